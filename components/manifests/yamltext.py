"""YAML text of objects: block style, keys in builder order, multi-line strings as literal blocks.

`dump` (the print, the golden files) has an emitter of its own for what the builders produce (dicts
with string keys, lists, strings, ints, bools, None): PyYAML's representer, in Python even with
libyaml, cost most of `make print` at scale. It writes what PyYAML writes (`yaml.dump_all` with
literal blocks for multi-line strings and `sort_keys=False`): the same choice of plain, quoted or
literal style for each string (ported from PyYAML's emitter, ASCII output), the same indentation
and the same anchors for an object that appears twice in a document, except that long lines are
never folded. Anything else (floats, other key types, keys PyYAML writes as `? key`) goes to PyYAML.

`dump_one` (the policy files the authz server loads) stays with PyYAML: those files are deployed
and must keep their bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from yaml.resolver import Resolver

_BASE: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE):  # type: ignore[misc,valid-type]
    """Multi-line strings (the authz policy files) as literal blocks, so they stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)

# Lines are never folded (PyYAML's default folds at 80 columns).
_UNFOLDED = 2**31 - 1


def dump(objs: Iterable[dict[str, Any]]) -> str:
    """A multi-document YAML stream, keys in builder order."""
    docs = list(objs)
    try:
        return _Emitter().stream(docs)
    except _UnsupportedError:
        text: str = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=_UNFOLDED)
        return text


def dump_one(obj: dict[str, Any]) -> str:
    """One document, lines never folded (policy files are read by machines first)."""
    text: str = yaml.dump(obj, Dumper=_BASE, sort_keys=False, width=4096)
    return text


# --- the emitter ----------------------------------------------------------------------------------


class _UnsupportedError(Exception):
    """A value outside what the emitter writes; PyYAML writes the stream instead."""


_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = Resolver()  # what a loader would make of a plain scalar (YAML 1.1: yes, on, 0x1F, 2024-01-01, ~, ...)

_BREAKS = "\n\x85\u2028\u2029"
_BLANKS = "\0 \t\r\n\x85\u2028\u2029"
# Strings that need no analysis: plain unless a loader would read them as something else.
_SIMPLE = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./-]*")
# Keys the emitter writes: printable ASCII, short enough to be simple keys for PyYAML and libyaml.
_KEY = re.compile(r"[\x20-\x7e]{1,100}")
_ESCAPES = {
    "\0": "0",
    "\x07": "a",
    "\x08": "b",
    "\x09": "t",
    "\x0a": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\x0d": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


def _is_str_when_plain(value: str) -> bool:
    return bool(_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG)  # type: ignore[no-untyped-call]


def _analyze(s: str) -> tuple[bool, bool, bool]:
    """(plain allowed in block context, single quotes allowed, literal block allowed): PyYAML's
    Emitter.analyze_scalar for allow_unicode=False."""
    if not s:
        return True, True, False
    block_indicators = s.startswith(("---", "..."))
    line_breaks = special = False
    leading_space = leading_break = trailing_space = trailing_break = break_space = space_break = False
    preceded_by_whitespace = True
    followed_by_whitespace = len(s) == 1 or s[1] in _BLANKS
    previous_space = previous_break = False
    last = len(s) - 1
    for index, ch in enumerate(s):
        if index == 0:
            if ch in "#,[]{}&*!|>'\"%@`":
                block_indicators = True
            if ch in "?:" and followed_by_whitespace:
                block_indicators = True
            if ch == "-" and followed_by_whitespace:
                block_indicators = True
        elif (ch == ":" and followed_by_whitespace) or (ch == "#" and preceded_by_whitespace):
            block_indicators = True
        if ch in _BREAKS:
            line_breaks = True
        if not (ch == "\n" or "\x20" <= ch <= "\x7e"):
            special = True  # ASCII output: anything else is escaped in double quotes
        if ch == " ":
            leading_space = leading_space or index == 0
            trailing_space = trailing_space or index == last
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            leading_break = leading_break or index == 0
            trailing_break = trailing_break or index == last
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_whitespace = ch in _BLANKS
        followed_by_whitespace = index + 2 > last or s[index + 2] in _BLANKS
    plain = not (leading_space or leading_break or trailing_space or trailing_break)
    single = block = True
    if trailing_space:
        block = False
    if break_space:
        plain = single = False
    if space_break or special:
        plain = single = block = False
    if line_breaks or block_indicators:
        plain = False
    return plain, single, block


def _single_quoted(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _double_quoted(s: str) -> str:
    out = ['"']
    for ch in s:
        if "\x20" <= ch <= "\x7e" and ch not in '"\\':
            out.append(ch)
        elif ch in _ESCAPES:
            out.append("\\" + _ESCAPES[ch])
        elif ch <= "\xff":
            out.append(f"\\x{ord(ch):02X}")
        elif ch <= "\uffff":
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    out.append('"')
    return "".join(out)


def _literal(s: str, indent: int) -> str:
    """` |<hints>` and the lines of a literal block, each indented by `indent` (empty lines bare)."""
    hints = "2" if s[0] in " " + _BREAKS else ""
    if s[-1] != "\n":
        hints += "-"
    elif len(s) == 1 or s[-2] == "\n":
        # Keeping the final line breaks ("|+") leaves the document open, which PyYAML and libyaml
        # close differently ("..."): rare enough to leave to PyYAML.
        raise _UnsupportedError("a literal block that keeps its final line breaks")
    pad = " " * indent
    lines = s.split("\n")
    if s.endswith("\n"):
        lines.pop()  # the last line break ends the block
    return f" |{hints}\n" + "\n".join(pad + line if line else "" for line in lines)


class _Emitter:
    """One stream. Anchors and aliases as PyYAML's serializer makes them: `&idNNN` on the first
    occurrence of a dict or list that occurs again in the document, numbered in the order of their
    second occurrence, counting from 1 in each document."""

    def __init__(self) -> None:
        self.out: list[str] = []
        # Formatted strings by value (the same ones recur in every destination): as values (None
        # for a literal block, which depends on the indentation), and as keys.
        self.scalars: dict[str, str | None] = {}
        self.keys: dict[str, str] = {}
        self.anchors: dict[int, str] = {}
        self.emitted: set[int] = set()

    def stream(self, docs: Sequence[Any]) -> str:
        for i, doc in enumerate(docs):
            if type(doc) is not dict:
                raise _UnsupportedError(type(doc).__name__)
            if i:
                self.out.append("---")
            self.anchors = self._anchors(doc)
            self.emitted = set()
            if doc:
                self.out.append("\n" if i else "")
                self._mapping(doc, 0, inline=False)
            else:
                self.out.append(" {}\n" if i else "{}\n")
        return "".join(self.out)

    @staticmethod
    def _anchors(doc: dict[str, Any]) -> dict[int, str]:
        seen: set[int] = set()
        anchors: dict[int, str] = {}

        def visit(node: Any) -> None:
            if type(node) is not dict and type(node) is not list:
                return
            key = id(node)
            if key in seen:
                if key not in anchors:
                    anchors[key] = f"id{len(anchors) + 1:03d}"
                return
            seen.add(key)
            for child in node.values() if type(node) is dict else node:
                visit(child)

        visit(doc)
        return anchors

    # Scalars ------------------------------------------------------------------------------------

    def _scalar(self, value: Any, indent: int) -> str:
        """` <scalar>` (with its leading space), or a literal block's header and lines."""
        if value is None:
            return " null"
        if value is True:
            return " true"
        if value is False:
            return " false"
        if type(value) is int:
            return f" {value}"
        if type(value) is not str:
            raise _UnsupportedError(type(value).__name__)
        text = self.scalars.get(value, "")
        if text == "":
            text = self.scalars[value] = self._format(value)
        if text is None:
            return _literal(value, indent)
        return text

    @staticmethod
    def _format(s: str) -> str | None:
        if _SIMPLE.fullmatch(s):
            return " " + s if _is_str_when_plain(s) else " " + _single_quoted(s)
        plain, single, block = _analyze(s)
        if "\n" in s:  # PyYAML's representer above asks for a literal block
            return None if block else " " + _double_quoted(s)
        if plain and _is_str_when_plain(s):
            return " " + s
        if single:
            return " " + _single_quoted(s)
        return " " + _double_quoted(s)

    def _key(self, key: Any) -> str:
        if type(key) is not str:
            raise _UnsupportedError(f"key of type {type(key).__name__}")
        text = self.keys.get(key)
        if text is None:
            if not _KEY.fullmatch(key):
                raise _UnsupportedError("a key PyYAML may write as `? key`")
            plain, single, _ = _analyze(key)
            if plain and _is_str_when_plain(key):
                text = key
            elif single:
                text = _single_quoted(key)
            else:
                text = _double_quoted(key)
            self.keys[key] = text
        return text

    # Collections --------------------------------------------------------------------------------

    def _opening(self, node: dict[str, Any] | list[Any]) -> tuple[str, bool]:
        """(` &idNNN` or ` *idNNN` or "", whether the node is an alias already written)."""
        name = self.anchors.get(id(node))
        if name is None:
            return "", False
        if id(node) in self.emitted:
            return f" *{name}", True
        self.emitted.add(id(node))
        return f" &{name}", False

    def _mapping(self, node: dict[str, Any], indent: int, inline: bool) -> None:
        """Keys at `indent`; with `inline`, the first one continues the current line ("- key: ...")."""
        pad = " " * indent
        out = self.out
        for key, value in node.items():
            out.append(self._key(key) + ":" if inline else pad + self._key(key) + ":")
            inline = False
            kind = type(value)
            if kind is dict or kind is list:
                mark, alias = self._opening(value)
                if alias:
                    out.append(mark + "\n")
                elif not value:
                    out.append(mark + (" {}\n" if kind is dict else " []\n"))
                elif kind is dict:
                    out.append(mark + "\n")
                    self._mapping(value, indent + 2, inline=False)
                else:  # a list under a key is not indented
                    out.append(mark + "\n")
                    self._sequence(value, indent, inline=False)
            else:
                out.append(self._scalar(value, indent + 2) + "\n")

    def _sequence(self, node: list[Any], indent: int, inline: bool) -> None:
        """Items' dashes at `indent`; with `inline`, the first continues the current line ("- - a")."""
        pad = " " * indent
        out = self.out
        for item in node:
            out.append("-" if inline else pad + "-")
            inline = False
            kind = type(item)
            if kind is dict or kind is list:
                mark, alias = self._opening(item)
                if alias:
                    out.append(mark + "\n")
                elif not item:
                    out.append(mark + (" {}\n" if kind is dict else " []\n"))
                elif mark:  # an anchored collection starts on the next line
                    out.append(mark + "\n")
                    if kind is dict:
                        self._mapping(item, indent + 2, inline=False)
                    else:
                        self._sequence(item, indent + 2, inline=False)
                else:
                    out.append(" ")
                    if kind is dict:
                        self._mapping(item, indent + 2, inline=True)
                    else:
                        self._sequence(item, indent + 2, inline=True)
            else:
                out.append(self._scalar(item, indent + 2) + "\n")
