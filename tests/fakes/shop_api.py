"""A made-up shop's order API (the "business system" lookups read), over real HTTP.

Like a Vietnamese game-card / e-commerce shop's back office: ``GET /v1/orders?phone=+84...``
lists a customer's recent orders (``{"orders": [...]}``, an empty list for an unknown phone),
``GET /v1/orders/{id}`` answers one order (``{"order": {...}}``) or 404 ``{"error": ...}``;
each order has its payments (``payments[].status``: ``success``, ``pending_bank``,
``failed``). Every call needs ``Authorization: Bearer <API_KEY>`` (401 otherwise).

Variants a test switches at any time: ``mode = "ok"``, ``"slow"`` (answers after ``delay``
seconds), ``"fail"`` (503 with an HTML error page, as a load balancer in front of a dead
back end does), ``"garbage"`` (200 with a body that is not JSON). ``calls`` counts requests.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

API_KEY = "shop-api-key-for-tests-7f3a9c"
PHONE = "+84912345678"
ORDERS = {
    "123456": {"id": "123456", "item": "Thẻ Garena 100k", "amount": 100000, "channel": "momo",
               "status": "paid", "created": "2026-12-04T09:12:00+07:00",
               "payments": [{"status": "pending_bank", "bank": "VCB"}]},
    "123400": {"id": "123400", "item": "Thẻ Viettel 50k", "amount": 50000, "channel": "bank",
               "status": "delivered", "created": "2026-12-01T20:40:00+07:00",
               "payments": [{"status": "success", "bank": "TCB"}]},
}
BY_PHONE = {PHONE: ["123456", "123400"]}


class FakeShopAPI(LocalHTTPServer):
    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 5.0
        self.calls = 0
        self.lock = threading.Lock()
        self.released = threading.Event()  # set: a slow answer stops waiting (teardown)

    def stop(self) -> None:
        self.released.set()
        super().stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(FakeHandler):
            def serve(self, body: bytes) -> None:
                with fake.lock:
                    fake.calls += 1
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self.reply(401, b'{"error": "invalid api key"}')
                    return
                if fake.mode == "slow":
                    fake.released.wait(fake.delay)
                elif fake.mode == "fail":
                    self.reply(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                               "text/html")
                    return
                elif fake.mode == "garbage":
                    self.reply(200, b"<html>maintenance</html>", "text/html")
                    return
                path, query, _ = self.request_params(body)
                try:
                    if path == "/v1/orders":
                        ids = BY_PHONE.get(query.get("phone", ""), [])
                        self.reply(200, orjson.dumps({"orders": [ORDERS[i] for i in ids]}))
                    elif path.startswith("/v1/orders/") and path[11:] in ORDERS:
                        self.reply(200, orjson.dumps({"order": ORDERS[path[11:]]}))
                    else:
                        self.reply(404, b'{"error": "order not found"}')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the hub gave up waiting (its timeout)

        return Handler


def wait_calls(fake: FakeShopAPI, n: int, timeout: float = 5.0) -> None:
    """Until the fake has had ``n`` calls (a background fetch reached it)."""
    end = time.monotonic() + timeout
    while fake.calls < n and time.monotonic() < end:
        time.sleep(0.01)
