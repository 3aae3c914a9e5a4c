"""What the tests see of processes, read from /proc: whether one still runs, and its children."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Running (a zombie has exited; so has a process whose /proc entry is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> dict[int, str]:
    """The direct children of `pid`, by pid, with their command names (at most 15 characters)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(rest[1]) == pid:
            found[int(stat.parent.name)] = comm
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, however deep."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            kids = (task / "children").read_text().split() if (task / "children").exists() else []
            for c in map(int, kids):
                if c not in out:
                    out.add(c)
                    todo.append(c)
    return out
