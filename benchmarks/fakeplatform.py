"""A stand-in for the Telegram Bot API for ``tongdai bench``: answers every call ``delay_s``
after receiving it, and notes when each sent text arrived. Loopback only, in a thread.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import orjson


class FakeBotAPI:
    """``api_base`` for a bench channel; ``arrivals`` maps each sent text to its arrival time
    (wall clock, seconds)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.arrivals: dict[str, float] = {}
        self.calls = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                params = orjson.loads(body) if body else {}
                with fake._lock:
                    fake.calls += 1
                    n = fake.calls
                    if isinstance(params.get("text"), str):
                        fake.arrivals.setdefault(params["text"], now)
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                result = {"message_id": n, "date": int(now), "chat": {"id": params.get("chat_id")}}
                data = orjson.dumps({"ok": True, "result": result})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the hub gave up waiting (its timeout): what a slow platform does

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
