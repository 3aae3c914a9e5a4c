"""A local stand-in for an external host: answers GET /, counts requests, can be paused and resumed.

Paused, it stops listening, so connections are refused (the sandbox's stand-in for a stopped
upstream); resumed, it listens on the same port again.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    def __init__(self, port: int, body: str) -> None:
        self.port = port
        self.body = body.encode()
        self.requests = 0
        self.last_headers: dict[str, str] = {}  # of the last request it answered (names lowercased)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stand_in._lock:
                    stand_in.requests += 1
                    stand_in.last_headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(stand_in.body)))
                self.end_headers()
                self.wfile.write(stand_in.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def pause(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    resume = start

    def stop(self) -> None:
        self.pause()
