"""The sandbox's scenarios: requests through the real gateway (and Checks sent to the real authz
server directly), each with what it should observe, one line each; `run` runs them all on one stack."""

from __future__ import annotations

import datetime as dt
import http.client
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from components import usage
from components.manifests import authz
from components.manifests.destination import resource_name
from components.settings.config import ConfigError, Destination, duration_ms
from components.settings.stackfile import load_stack

from .authz_check import Decision
from .harness import (
    FAIL_OPEN,
    LOAD_ERRORS,
    OWN,
    PRINCIPAL,
    Response,
    Sandbox,
    allowed_headers,
    platform_of,
    usage_registry,
)

UNROUTED_HOST = "unlisted.example"  # no route names it


@dataclass
class Result:
    name: str
    expected: str
    observed: str
    outcome: str  # PASS, FAIL, NOT RUN (could not run here), N/A (does not apply to this stack)


PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "PASS", "FAIL", "NOT RUN", "N/A"


def _denied_403(decision: Decision, message: str) -> bool:
    """A direct Check's answer: denied, 403, with exactly this message."""
    return not decision.allowed and decision.http_status == 403 and decision.body == message


@dataclass
class Scenarios:
    box: Sandbox
    usage_registry: usage.Registry  # who is who, for the usage report
    results: list[Result] = field(default_factory=list)
    ended_ms: dict[str, float] = field(default_factory=dict)  # registry write -> first denial, by case

    def add(self, name: str, expected: str, observed: str, ok: bool | str) -> None:
        outcome = ok if isinstance(ok, str) else PASS if ok else FAIL
        self.results.append(Result(name, expected, observed, outcome))
        print(f"{outcome:<8} {name:<56} expected {expected:<44} observed {observed}", flush=True)

    def _denied_with(self, r: Response, dest: Destination) -> bool:
        return r.status == 403 and r.body == dest.authz.deny_message.encode("utf-8")

    def authz(self) -> None:
        """Decisions of the real authz server on requests through the real gateway."""
        box = self.box
        dests = list(box.cfg.destinations)
        for d in dests:
            want_body = box.stand_ins[d.name].body
            r = box.request(d.host, allowed_headers(d))
            what = "with the headers" if d.authz.require_headers else "(its listener alone)"
            self.add(
                f"{d.name}: owner allowed {what}",
                f"200 {want_body.decode()!r}",
                str(r),
                r.status == 200 and r.body == want_body,
            )
            if d.authz.require_headers:
                r = box.request(d.host, {})
                self.add(
                    f"{d.name}: denied without the headers",
                    f"403 {d.authz.deny_message!r}",
                    str(r),
                    self._denied_with(r, d),
                )
            self.other_port(d)
            # Negative control: the previous, principal-based policy, through the same gateway.
            r = box.request(d.host, allowed_headers(d), listener=PRINCIPAL)
            self.add(
                f"{d.name}: negative control, principal-based policy",
                f"403 {d.authz.deny_message!r} (no principal reaches ext_authz)",
                str(r),
                self._denied_with(r, d),
            )
        # Another destination's host is judged by that destination's route only.
        if len(dests) > 1:
            for a, b in zip(dests, dests[1:] + dests[:1], strict=True):
                sent = allowed_headers(a)
                r = box.request(b.host, sent)
                b_accepts = all(sent.get(h) in allowed for h, allowed in b.authz.require_headers.items())
                want = f"200 {box.stand_ins[b.name].body.decode()!r}" if b_accepts else f"403 {b.authz.deny_message!r}"
                ok = r.status == 200 if b_accepts else self._denied_with(r, b)
                self.add(f"{b.name}: the headers of {a.name} judged by {b.name}'s route", want, str(r), ok)
        else:
            self.add(
                "another destination's host judged by its own route",
                "-",
                "this stack has one destination (the direct Check below covers the host)",
                NOT_APPLICABLE,
            )
        # The route's host is part of its rule: a Check carrying this route's context for another host.
        d = dests[0]
        decision = box.check("elsewhere.example", allowed_headers(d), OWN, box.route_context(d))
        self.add(
            f"{d.name}: route context with another host (direct Check)",
            f"denied 403 {d.authz.deny_message!r}",
            str(decision),
            _denied_403(decision, d.authz.deny_message),
        )
        # Canary: a Check without a route's context, straight to the server: the default deny decides.
        decision = box.check(UNROUTED_HOST, allowed_headers(d), OWN, {})
        self.add(
            "canary: unknown host, direct Check, default deny",
            f"denied 403 {authz.DEFAULT_DENY_MESSAGE!r}",
            str(decision),
            _denied_403(decision, authz.DEFAULT_DENY_MESSAGE),
        )
        # The policy directories are the kubelet layout, loaded without a single load or compile error.
        n = len(authz.POLICY_SOURCES)
        layout_ok = all((p / "..data").is_symlink() for p in box.policy_dirs.values()) and len(box.policy_dirs) == n
        errors = [line for line in box.authz_log().splitlines() if any(e in line for e in LOAD_ERRORS)]
        self.add(
            "policy sources in the kubelet ConfigMap layout",
            f"{n} sources with ..data, no load/compile error",
            f"{len(box.policy_dirs)} sources, ..data {'present' if layout_ok else 'missing'}, {len(errors)} errors",
            layout_ok and not errors,
        )

    def approvals_end(self) -> None:
        """Security ends the approval of the first destination (removes it, then lets it expire): the
        registry changes, nothing of the team's does, and the route's requests are denied. Revocation and
        an expiry date in the past reach the gateway as the platform's `pulumi up` takes them there: a new
        approval policy file, which rolls the authz server (here: the server restarted with the new
        file). Measured: the time from the registry change to the first denial through the gateway."""
        box = self.box
        d = box.cfg.destinations[0]
        approval = next((a for a in box.registry if a.host == d.host and box.team.name in a.teams), None)
        if approval is None:
            for name in ENDED_SCENARIOS:
                self.add(name, "-", "no approval of the first destination in the registry", NOT_APPLICABLE)
            return
        yesterday = box.today - dt.timedelta(days=1)
        others = [a for a in box.registry if a is not approval]
        for case, registry in (
            ("revoked", others),
            ("expired", [*others, approval.model_copy(update={"expires": yesterday})]),
        ):
            before = box.request(d.host, allowed_headers(d))
            start = time.monotonic()
            box.change_registry(registry)
            r, waited = self._until(lambda: box.request(d.host, allowed_headers(d)), lambda r: r.status == 403)
            ms = (waited - start) * 1000
            self.ended_ms[case] = ms
            ok = before.status == 200 and r.status == 403 and r.body == authz.ENDED_MESSAGE.encode()
            self.add(
                f"{d.name}: approval {case}, team unchanged",
                f"200 then 403 {authz.ENDED_MESSAGE[:30]!r}...",
                f"{before.status} then {r.status}, {ms:.0f} ms after the change (server restart included)",
                ok,
            )
            box.change_registry(box.registry)
        # The expiry instant: the end of the approval's last day (UTC), the Check's request time against
        # it, with no change at all: the policy compares it at every request.
        end = dt.datetime.combine(approval.expires, dt.time(23, 59, 59), dt.UTC).timestamp()
        at_end, past_end = (
            box.check(d.host, allowed_headers(d), OWN, box.route_context(d), at=end + s) for s in (0, 1)
        )
        self.add(
            f"{d.name}: expiry instant {approval.expires.isoformat()}T23:59:59Z (direct Checks)",
            "allowed at the instant, denied one second later",
            f"{at_end}; {past_end}",
            at_end.allowed and _denied_403(past_end, authz.ENDED_MESSAGE),
        )

    @staticmethod
    def _until(
        call: Callable[[], Response], done: Callable[[Response], bool], timeout: float = 30
    ) -> tuple[Response, float]:
        """Repeat `call` until `done`; its last response and when it came (time.monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            r = call()
            if done(r) or time.monotonic() > deadline:
                return r, time.monotonic()
            time.sleep(0.005)

    def other_port(self, d: Destination) -> None:
        """Another team's listener: ztunnel lets only that team's namespace connect to it (proven by
        the kind e2e); were a request for this team's host to arrive there, no route of this team is
        attached to it (404, authorization never asked), and a Check carrying this team's route context
        from that port is denied by authorization's port check."""
        box = self.box
        if not box.others:
            self.add(f"{d.name}: another team's port", "-", "the platform has one team", NOT_APPLICABLE)
            return
        other = box.other_listener(box.others[0].name)
        r = box.request(d.host, allowed_headers(d), listener=other)
        details = box.log_entry(r.request_id).get("response_code_details")
        self.add(
            f"{d.name}: another team's port ({box.others[0].name}), right headers",
            "404 route_not_found",
            f"{r.status} {details}",
            r.status == 404 and details == "route_not_found",
        )
        decision = box.check(d.host, allowed_headers(d), other, box.route_context(d))
        self.add(
            f"{d.name}: this route's context from another team's port (direct Check)",
            f"denied 403 {d.authz.deny_message!r}",
            str(decision),
            _denied_403(decision, d.authz.deny_message),
        )

    def unrouted(self) -> None:
        """Canary: a host no route names never reaches authorization (the gateway answers 404)."""
        box = self.box
        first = box.cfg.destinations[0]
        r = box.request(UNROUTED_HOST, allowed_headers(first))
        details = box.log_entry(r.request_id).get("response_code_details")
        observed = f"{r.status} {details}"
        ok = r.status == 404 and details == "route_not_found"
        if box.authz is not None:  # the server logs every Check it decides
            called = UNROUTED_HOST in box.authz_log()
            observed += ", authz server called" if called else ", authz server not called"
            ok = ok and not called
        self.add("canary: unrouted host answered by the gateway", "404 route_not_found", observed, ok)

    def _listener(self) -> str:
        """Through the authorized path when the authz server runs; else through the failOpen listener."""
        return OWN if self.box.authz is not None else FAIL_OPEN

    def credentials(self) -> None:
        """The gateway sets a destination's credential on the upstream request, over the client's own
        value; the client never receives it, and the access log never holds it."""
        box = self.box
        dests = [d for d in box.cfg.destinations if d.credential is not None]
        if not dests:
            self.add("credential set by the gateway", "-", "no destination of this stack has one", NOT_APPLICABLE)
            return
        for d in dests:
            assert d.credential is not None
            header, value = d.credential.header, box.credential_value(d)
            secret = box.secret_values[d.name]
            s = box.stand_ins[d.name]
            sent = {**allowed_headers(d), header: "client-own-value"}
            r = box.request(d.host, sent, listener=self._listener())
            seen = s.last_headers.get(header.lower(), "")
            leaked = secret in r.text or any(secret in v for v in r.headers.values())
            logged = secret in box.log_line(r.request_id)
            self.add(
                f"{d.name}: credential set by the gateway",
                f"upstream {header} = the secret's value, never the client's; not in response or log",
                f"{r.status}, upstream got {'it' if seen == value else repr(seen[:24])}"
                f"{', in response' if leaked else ''}{', in access log' if logged else ''}",
                r.status == 200 and seen == value and not leaked and not logged,
            )

    def budget(self) -> None:
        """Past its budget a destination is answered 429 by the gateway, the upstream never asked; the
        bucket refills at the configured rate."""
        box = self.box
        d = next((d for d in box.cfg.destinations if d.budget is not None), None)
        if d is None:
            self.add("budget: 429 past the token bucket", "-", "no destination of this stack has one", NOT_APPLICABLE)
            return
        tp = next(o for o in box.objects if o["kind"] == "TrafficPolicy" and o["metadata"]["name"] == resource_name(d))
        bucket = tp["spec"]["rateLimit"]["local"]["tokenBucket"]
        fill_s = duration_ms(bucket["fillInterval"]) / 1000
        s, listener = box.stand_ins[d.name], self._listener()
        before, start = s.requests, time.monotonic()
        burst = [
            box.request(d.host, allowed_headers(d), listener=listener) for _ in range(int(bucket["maxTokens"]) + 5)
        ]
        refills = int((time.monotonic() - start) / fill_s) + 1
        ok = sum(r.status == 200 for r in burst)
        limited = [r for r in burst if r.status == 429]
        cap = int(bucket["maxTokens"]) + refills * int(bucket.get("tokensPerFill", 1))
        self.add(
            f"{d.name}: a burst past the budget",
            f"200 then 429 only, at most {cap} through, upstream asked only for those",
            f"{ok} x 200, {len(limited)} x 429 {limited[0].text[:30]!r}, upstream +{s.requests - before}"
            if limited
            else f"{ok} x 200, no 429",
            bool(limited) and ok + len(limited) == len(burst) and ok <= cap and s.requests - before == ok,
        )
        # One interval later: tokensPerFill more (up to two intervals' worth, by the timer's phase).
        time.sleep(fill_s * 1.2)
        per_fill = int(bucket.get("tokensPerFill", 1))
        before = s.requests
        after = [box.request(d.host, allowed_headers(d), listener=listener) for _ in range(2 * per_fill + 1)]
        passed = sum(r.status == 200 for r in after)
        self.add(
            f"{d.name}: the budget refills at its rate",
            f"{per_fill} to {2 * per_fill} through after {bucket['fillInterval']}, the rest 429",
            f"{passed} through, upstream +{s.requests - before}",
            per_fill <= passed <= 2 * per_fill and s.requests - before == passed,
        )
        time.sleep(fill_s * 3)  # tokens for the scenarios that follow

    def usage_report(self) -> None:
        """The usage report over this run's access log counts exactly the requests the sandbox sent."""
        box = self.box
        time.sleep(0.1)  # Envoy flushes its access log every 20 ms
        report = usage.build_report(box.access_log.read_text(encoding="utf-8").splitlines(), self.usage_registry)
        got = {(r.team, r.destination): r for r in report.rows}
        want: dict[tuple[str, str], dict[str, int]] = {}
        for port, host, status in box.sent:
            team = self.usage_registry.team_of(port)
            key = (team, self.usage_registry.destination_of(team, host.split(":")[0]))
            row = want.setdefault(key, {"requests": 0, "allowed": 0, "denied": 0, "rate_limited": 0, "other": 0})
            row["requests"] += 1
            category = {200: "allowed", 503: "allowed", 403: "denied", 429: "rate_limited"}.get(status, "other")
            row[category] += 1
        mismatched = [
            key
            for key, w in want.items()
            if key not in got
            or (got[key].requests, got[key].allowed, got[key].denied, got[key].rate_limited, got[key].other_local)
            != (w["requests"], w["allowed"], w["denied"], w["rate_limited"], w["other"])
        ]
        self.add(
            "usage report over the gateway's access log",
            f"{len(box.sent)} requests in {len(want)} (team, destination) rows, each category exact",
            f"{report.total.requests} requests, {len(got)} rows, mismatched: {mismatched or 'none'}",
            not mismatched and set(got) == set(want) and report.total.requests == len(box.sent),
        )

    def policy_gone(self) -> None:
        """The race a tenant can win at admission (its route's TrafficPolicy deleted while the route is
        created) is harmless at the gateway: the route's rule names the policy, and with the policy
        gone kgateway answers 500; nothing is forwarded and no Check is made."""
        box = self.box
        first = box.cfg.destinations[0]
        s = box.stand_ins[first.name]
        kept = box.objects
        name = resource_name(first)
        box.push([o for o in kept if not (o["kind"] == "TrafficPolicy" and o["metadata"]["name"] == name)])
        try:
            before, checks = s.requests, box.authz_log().count(first.host) if box.authz is not None else 0
            r = box.request(first.host, allowed_headers(first), listener=self._listener())
            checked = box.authz is not None and box.authz_log().count(first.host) > checks
            self.add(
                f"{first.name}: its TrafficPolicy gone, the route still there",
                "500 from the gateway, not forwarded, no Check",
                f"{r.status}, upstream requests +{s.requests - before}{', checked' if checked else ''}",
                r.status == 500 and s.requests == before and not checked,
            )
        finally:
            box.push(kept)

    def path(self) -> None:
        """Retries and the fail-closed stance (the authz server is stopped for the last two)."""
        box = self.box
        first = box.cfg.destinations[0]
        s = box.stand_ins[first.name]
        listener = self._listener()
        s.pause()
        try:
            r = box.request(first.host, allowed_headers(first), listener=listener)
        finally:
            s.resume()
        entry = box.log_entry(r.request_id)
        tries = first.retries.attempts + 1
        flags, attempts = entry.get("response_flags"), entry.get("upstream_request_attempt_count")
        self.add(
            f"{first.name}: upstream paused",
            f"503, flags URX/UF, attempts {tries}",
            f"{r.status}, flags {flags}, attempts {attempts}",
            r.status == 503
            and any(f in str(flags) for f in ("URX", "UF"))
            and str(attempts).isdigit()
            and int(str(attempts)) == tries,
        )
        if box.authz is not None:
            box.authz.terminate()
            box.authz.wait(timeout=10)
        before = s.requests
        r = box.request(first.host, allowed_headers(first))
        self.add(
            f"{first.name}: authz down, failOpen false",
            "403, not forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 403 and s.requests == before,
        )
        before = s.requests
        r = box.request(first.host, {}, listener=FAIL_OPEN)
        self.add(
            f"{first.name}: authz down, failOpen true",
            "200, forwarded",
            f"{r.status}, upstream requests +{s.requests - before}",
            r.status == 200 and s.requests == before + 1,
        )


ENDED_SCENARIOS = (
    "approval revoked, team unchanged",
    "approval expired, team unchanged",
    "expiry instant (direct Checks)",
)
AUTHZ_SCENARIOS = (
    "owner allowed (each destination)",
    "denied without the headers (each destination)",
    "another team's port, right headers (each destination)",
    "negative control: the principal-based policy denies the owner (each destination)",
    "another destination's host judged by its own route",
    "canary: unknown host, direct Check, default deny",
    "policy sources in the kubelet ConfigMap layout",
    *ENDED_SCENARIOS,
)


def summary(results: Sequence[Result]) -> str:
    count = {o: sum(r.outcome == o for r in results) for o in (PASS, FAIL, NOT_RUN, NOT_APPLICABLE)}
    if count[FAIL] or count[NOT_RUN]:
        head = f"sandbox: {count[PASS]} passed, {count[FAIL]} failed, {count[NOT_RUN]} not run"
    else:
        head = f"sandbox: all {count[PASS]} scenarios passed"
    return head + (f" ({count[NOT_APPLICABLE]} not applicable to this stack)" if count[NOT_APPLICABLE] else "")


class StopRequestedError(Exception):
    """SIGTERM or SIGINT: stop everything and exit."""


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise StopRequestedError(signal.Signals(signum).name)


def run(stack_file: Path, authz_binary: str | None, keep_log: Path | None = None) -> tuple[int, list[Result]]:
    """Run the scenarios; `keep_log`, where given, receives the gateway's access log with each
    listener's real port in place of its loopback stand-in (as the gateway in the cluster writes it)."""
    try:
        cfg = load_stack(stack_file)
        platform = platform_of(cfg, stack_file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, []
    not_run = "no kyverno-authz server (KYVERNO_AUTHZ_BIN unset; see README)"
    with tempfile.TemporaryDirectory(prefix="egress-sandbox-") as tmp:
        try:
            box = Sandbox(cfg, Path(tmp), authz_binary, platform.approvals_in_force, platform.teams)
            scenarios_registry = usage_registry(box, stack_file)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1, []
        scenarios = Scenarios(box, scenarios_registry)
        try:
            box.start()
            scenarios.unrouted()
            if authz_binary:
                scenarios.authz()
                scenarios.approvals_end()
            else:
                for name in AUTHZ_SCENARIOS:
                    scenarios.add(name, "-", not_run, NOT_RUN)
            scenarios.credentials()
            scenarios.budget()
            scenarios.policy_gone()
            scenarios.path()
            scenarios.usage_report()
        except (RuntimeError, OSError, http.client.HTTPException) as exc:
            print(f"error: {exc}", file=sys.stderr)
            for log in ("authz/authz.log", "envoy.log"):
                path = Path(tmp) / log
                if path.exists():
                    print(f"--- {log}\n{path.read_text(errors='replace')[-2000:]}", file=sys.stderr)
            return 1, scenarios.results
        except (KeyboardInterrupt, StopRequestedError) as exc:
            print(f"interrupted ({exc or 'SIGINT'}): stopping every process", file=sys.stderr)
            return 130, scenarios.results
        finally:
            box.stop()
            if keep_log is not None and box.access_log.exists():
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                keep_log.write_text(box.access_log_as_deployed(), encoding="utf-8")
    if keep_log is not None:
        print(f"access log: {keep_log} (make usage STACK=... reads it)")
    print(summary(scenarios.results))
    return (1 if any(r.outcome == FAIL for r in scenarios.results) else 0), scenarios.results
