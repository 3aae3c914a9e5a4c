"""The loopback port allocator every test process uses: free ports, never the same one twice."""

from __future__ import annotations

import random
import socket

import pytest

from devenv import ports


def test_ports_never_repeat_within_a_process() -> None:
    # The sandbox asks several times (its listeners, then each authz server); a repeat made two
    # processes race for one port, so every call must avoid what earlier calls returned.
    seen: list[int] = []
    for _ in range(50):
        seen += ports.free_ports(4)
    assert len(seen) == len(set(seen)) == 200


def test_ports_lie_below_the_ephemeral_range() -> None:
    # Outgoing connections take ephemeral ports; a chosen port there could be taken before it is bound.
    low = ports._ephemeral_low()
    assert all(ports._LOWEST <= p < low for p in ports.free_ports(20))


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        busy = held.getsockname()[1]
        held.listen()
        monkeypatch.setattr(ports, "_LOWEST", busy)
        monkeypatch.setattr(ports, "_ephemeral_low", lambda: busy + 3)
        monkeypatch.setattr(random, "randrange", lambda _span: 0)  # start the scan at the busy port
        monkeypatch.setattr(ports, "_handed_out", set())
        got = ports.free_ports(1)
    assert got != [busy] and len(got) == 1


def test_with_no_room_below_the_ephemeral_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_ephemeral_low", lambda: ports._LOWEST)
    got = ports.free_ports(3)
    assert len(set(got)) == 3 and all(p > 0 for p in got)
