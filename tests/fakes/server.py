"""What every fake platform shares: a real HTTP server on 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import orjson


class LocalHTTPServer:
    """Subclasses give ``_handler()`` (and ``base_path`` for a versioned API)."""

    base_path = ""
    base_url = ""
    _server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> str:
        """Serve on a free port; return the base URL an adapter's settings point at."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port (later requests get connection refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart/form-data request, as a platform receives an upload."""

    filename: str
    content_type: str
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """A multipart/form-data body (RFC 7578): text parts as str, file parts (those with a
    filename) as ``UploadedFile``. The stdlib's mail parser reads the MIME structure."""
    msg = BytesParser(policy=default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    form: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            form[name] = data.decode()
    return form


class FakeHandler(BaseHTTPRequestHandler):
    """A request as platforms' APIs take them: GET and POST both go to ``serve(body)``."""

    def do_GET(self) -> None:
        self.serve(b"")

    def do_POST(self) -> None:
        self.serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def serve(self, body: bytes) -> None:
        raise NotImplementedError

    def request_params(self, body: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(path, query parameters, body parameters from JSON or a form)."""
        url = urlsplit(self.path)
        form: dict[str, Any] = {}
        if body and "json" in self.headers.get("Content-Type", ""):
            form = orjson.loads(body)
        elif body and self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            form = parse_multipart(self.headers["Content-Type"], body)
        elif body:
            form = dict(parse_qsl(body.decode()))
        return url.path, dict(parse_qsl(url.query)), form

    def reply(self, status: int, data: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines can hold tokens: never print them
