"""Loopback ports for the processes a test starts: free when chosen, and never handed out twice.

Asking the kernel for port 0 and closing the socket is not enough: a later call in the same
process can get the same port back before the first one is bound (the sandbox once gave Envoy's
listener the authz server's gRPC port that way), and an outgoing connection can take a port
from the ephemeral range between choosing it and binding it. So ports are drawn from below the
kernel's ephemeral range, checked free by binding, and remembered for the life of the process.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000  # above the ports services commonly listen on
_FALLBACK_EPHEMERAL_LOW = 32768  # Linux's default when the range cannot be read
_lock = threading.Lock()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_LOW


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_port(stack: contextlib.ExitStack) -> int:
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.bind(("127.0.0.1", 0))
    return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """count distinct free loopback ports that no earlier call in this process returned."""
    high = _ephemeral_low() - 1
    chosen: list[int] = []
    with _lock:
        span = high + 1 - _LOWEST
        start = random.randrange(span) if span > 0 else 0
        for i in range(max(span, 0)):  # from a random point, so two processes rarely meet
            if len(chosen) == count:
                break
            port = _LOWEST + (start + i) % span
            if port not in _handed_out and _is_free(port):
                chosen.append(port)
        if len(chosen) < count:  # no room below the ephemeral range: ask the kernel, holding each
            with contextlib.ExitStack() as stack:
                while len(chosen) < count:
                    port = _kernel_port(stack)
                    if port not in _handed_out and port not in chosen:
                        chosen.append(port)
        _handed_out.update(chosen)
    return chosen
