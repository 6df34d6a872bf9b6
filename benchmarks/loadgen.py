"""HTTP load client: one process, one thread, non-blocking sockets on epoll, pre-built requests.

Two modes, both loopback only and bounded by request count and time:

* closed loop (``rate`` 0): ``concurrency`` requests always in flight; measures acks/s.
* open loop (``rate`` > 0): request i is sent at ``t0 + i / rate`` whatever the responses do
  (a late response never delays the next request); new connections are opened as needed.

Keep-alive is used when the server allows it; gunicorn's sync workers answer
``Connection: close`` and the client then reconnects for every request, as a platform would.

Run as ``python -m tongdai.benchmarks.loadgen '<json options>'``; prints one JSON result line.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import sys
import time

import orjson

from tongdai.benchmarks.corpus import SECRET_HEADER, Traffic

_CONNECTING, _SENDING, _READING = 0, 1, 2


def build_requests(path: str, secret: str, n: int, seed: int, users: int,
                   base_update: int) -> list[bytes]:
    traffic = Traffic(seed=seed, users=users, base_update=base_update)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{SECRET_HEADER}: {secret}\r\nUser-Agent: tongdai-bench\r\n").encode()
    out = []
    for body in traffic.bodies(n):
        out.append(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


class _Conn:
    __slots__ = ("buf", "out", "sock", "started", "state")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = _CONNECTING
        self.out = b""
        self.buf = b""
        self.started = 0.0


def _response_done(buf: bytes) -> tuple[int, bool] | None:
    """(status, keep_alive) once ``buf`` holds a whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").lower()
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep = 0, lines[0].startswith("http/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value != "close"
    if len(buf) - end - 4 < length:
        return None
    return status, keep


def run(port: int, requests: list[bytes], concurrency: int = 8, rate: float = 0.0,
        duration: float = 5.0, host: str = "127.0.0.1", max_conns: int = 2000) -> dict:
    sel = getattr(selectors, "EpollSelector", selectors.DefaultSelector)()
    idle: list[_Conn] = []
    live = 0
    n = len(requests)
    next_i = 0
    done = ok = errors = 0
    statuses: dict[int, int] = {}
    lat_sum = 0.0
    lats: list[float] = []  # every response time, for percentiles
    max_lag = 0.0
    conns_opened = 0
    t0_wall = time.time()
    t0 = time.monotonic()
    deadline = t0 + duration
    last_send = t0

    def start(req: bytes) -> None:
        nonlocal live, conns_opened
        if idle:
            c = idle.pop()
            c.state, c.out, c.buf = _SENDING, req, b""
            c.started = time.monotonic()
            _send(c)
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((host, port))
        conns_opened += 1
        c = _Conn(s)
        c.out, c.started = req, time.monotonic()
        live += 1
        if err in (0, errno.EISCONN):
            c.state = _SENDING
            _send(c, register=True)
        elif err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            sel.register(s, selectors.EVENT_WRITE, c)
        else:
            _fail(c, register=False)

    def _send(c: _Conn, register: bool = False) -> None:
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            _fail(c, register=not register)
            return
        c.out = c.out[sent:]
        events = selectors.EVENT_WRITE if c.out else selectors.EVENT_READ
        c.state = _SENDING if c.out else _READING
        if register:
            sel.register(c.sock, events, c)
        else:
            sel.modify(c.sock, events, c)

    def _close(c: _Conn, registered: bool = True) -> None:
        nonlocal live
        if registered:
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        c.sock.close()
        live -= 1

    def _fail(c: _Conn, register: bool = True) -> None:
        nonlocal done, errors
        done += 1
        errors += 1
        _close(c, registered=register)

    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        # issue what is due
        if rate > 0:
            while next_i < n and t0 + next_i / rate <= now and live < max_conns:
                max_lag = max(max_lag, now - (t0 + next_i / rate))
                start(requests[next_i])
                next_i += 1
                last_send = now
            if next_i >= n and live == 0:
                break
            if next_i >= n or live >= max_conns:
                wait = 0.05  # nothing due, or at the connection cap: wait for responses
            else:
                wait = t0 + next_i / rate - now
            wait = min(max(wait, 0.0), deadline - now)
        else:
            while next_i < n and live - len(idle) < concurrency:
                start(requests[next_i])
                next_i += 1
                last_send = time.monotonic()
            if next_i >= n and live - len(idle) == 0:
                break
            wait = deadline - now
        for key, mask in sel.select(timeout=wait):
            c: _Conn = key.data
            if c.state == _CONNECTING:
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    _fail(c)
                    continue
                c.state = _SENDING
                _send(c)
            elif c.state == _SENDING:
                _send(c)
            else:
                try:
                    chunk = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    _fail(c)
                    continue
                if not chunk:
                    _fail(c)
                    continue
                c.buf += chunk
                res = _response_done(c.buf)
                if res is None:
                    continue
                status, keep = res
                done += 1
                took = time.monotonic() - c.started
                lat_sum += took
                lats.append(took)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    ok += 1
                else:
                    errors += 1
                if keep:
                    c.state = _READING
                    c.buf = b""
                    idle.append(c)
                else:
                    _close(c)
    elapsed = time.monotonic() - t0
    for key in list(sel.get_map().values()):
        try:
            key.fileobj.close()
        except OSError:
            pass
    for c in idle:
        c.sock.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    send_span = max(last_send - t0, 1e-9)
    return {
        "t0_wall": t0_wall, "sent": next_i, "done": done, "ok": ok, "errors": errors,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed_s": elapsed, "ok_per_s": ok / elapsed if elapsed else 0.0,
        "send_rate": (next_i - 1) / send_span if rate > 0 and next_i > 1 else None,
        "max_send_lag_ms": max_lag * 1000,
        "mean_response_ms": lat_sum / done * 1000 if done else None,
        "p50_response_ms": _pct(lats, 0.50), "p99_response_ms": _pct(lats, 0.99),
        "connections": conns_opened,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] * 1000


def main() -> None:
    opts = orjson.loads(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2000 + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    reqs = build_requests(opts["path"], opts["secret"], opts["n"], opts.get("seed", 1),
                          opts.get("users", 1000), opts.get("base_update", 500_000_000))
    before = resource.getrusage(resource.RUSAGE_SELF)
    max_conns = max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64)
    result = run(opts["port"], reqs, concurrency=opts.get("concurrency", 8),
                 rate=opts.get("rate", 0.0), duration=opts.get("duration", 5.0),
                 max_conns=min(2000, max_conns))
    result["client_cpu_s"] -= before.ru_utime + before.ru_stime
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
