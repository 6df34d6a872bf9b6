"""The contract suite's stand-ins: a scripted platform over real HTTP, and guards that see
what ``verify`` and ``parse`` do (open a connection, compare secrets)."""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson


@dataclass(frozen=True, slots=True)
class Answer:
    """What the fake platform answers: a status, a JSON body (or bytes), headers. Status 0:
    read the request, then close the connection without answering (no answer came back)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return orjson.dumps(self.body if self.body is not None else {})



class FakePlatform:
    """A real HTTP server on 127.0.0.1 answering every request with the current ``Answer``
    (and recording what it got)."""

    def __init__(self) -> None:
        self.answer = Answer(200, {})
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                a = fake.answer
                if a.status == 0:  # the request arrived; the answer never does
                    self.close_connection = True
                    return
                data = a.payload()
                self.send_response(a.status)
                ctype = "text/html" if isinstance(a.body, bytes) else "application/json"
                self.send_header("Content-Type", a.headers.get("Content-Type", ctype))
                self.send_header("Content-Length", str(len(data)))
                for k, v in a.headers.items():
                    if k.lower() != "content-type":
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there now
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoSockets:
    """Within it, opening any connection fails the check (parse and verify are pure)."""

    def __init__(self) -> None:
        self.tried: list[Any] = []

    def __enter__(self) -> Self:
        self._connect = socket.socket.connect
        tried = self.tried

        def refuse(sock: socket.socket, address: Any) -> None:
            tried.append(address)
            raise OSError("the adapter contract: no connections from verify or parse")

        socket.socket.connect = refuse  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        socket.socket.connect = self._connect  # type: ignore[method-assign]


class CountCompares:
    """Counts ``hmac.compare_digest`` calls (``constant_time_equal`` and ``secrets`` use it)."""

    def __init__(self, modules: list[Any]) -> None:
        self.calls, self.modules = 0, modules

    def __enter__(self) -> Self:
        self._real = hmac.compare_digest

        def counted(a: Any, b: Any) -> bool:
            self.calls += 1
            return self._real(a, b)

        self._patched = [(m, m.compare_digest) for m in self.modules
                         if getattr(m, "compare_digest", None) is self._real]
        hmac.compare_digest = counted  # type: ignore[assignment]
        for m, _ in self._patched:  # ``from hmac import compare_digest`` in the adapter
            m.compare_digest = counted
        return self

    def __exit__(self, *exc: object) -> None:
        hmac.compare_digest = self._real  # type: ignore[assignment]
        for m, real in self._patched:
            m.compare_digest = real


