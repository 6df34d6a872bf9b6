"""Spike alerts: the detector on a synthetic week with a daily cycle and one known spike, then
real traffic (Telegram updates → ingest → the change feed) read by two reactor processes,
alerting once — to the API, the Telegram staff group (the fake Bot API) and an integrator's
webhook."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.conftest import write_config
from tests.helpers import auth, drain_all, post, tg_update
from tests.staff import create_people
from tests.workspace import test_hooks
from tests.workspace.conftest import LOCAL_RECEIVERS
from tongdai.core.clock import now_ms
from tongdai.core.config import ConfigInvalid, load_config
from tongdai.core.config_spikes import SpikesSection
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Direction, Message
from tongdai.core.pipeline import feed
from tongdai.core.workspace import hookdelivery, spikes

B = 288  # 5-minute buckets a day
WEEK = 7 * B
STAFF_CHAT = -1009876543210
receiver = test_hooks.receiver  # an integrator's endpoint on 127.0.0.1 (a fixture)


# -- the detector on a synthetic series ---------------------------------------------------------
def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _rate(bucket: int) -> float:
    """Customers per 5 minutes: the shop opens at 8:00 (1 → 12 within 15 minutes), quieter
    from 18:00, night from 22:00; weekends (days 5, 6) at half."""
    hour = (bucket % B) / 12
    day = (bucket // B) % 7
    level = 1.0 if hour < 8 else 12.0 if hour < 18 else 6.0 if hour < 22 else 1.0
    return level * (0.5 if day >= 5 else 1.0)


def test_detector_finds_the_spike_and_not_the_daily_cycle():
    cfg = SpikesSection()  # the defaults: 5-minute buckets, 15-minute windows, 4 weeks
    rng = random.Random(15)
    weeks = 5
    series = [_poisson(rng, _rate(b)) for b in range(weeks * WEEK)]
    spike_at = (weeks - 1) * WEEK + 2 * B + 15 * 12  # Wednesday 15:00 of the last week
    for b in range(spike_at, spike_at + 3):  # "nạp thẻ lỗi": +45 customers in 15 minutes
        series[b] += 15

    def window(end: int) -> int:
        return sum(series[end - 2:end + 1])

    def alerts(conf: SpikesSection) -> list[int]:
        found = []
        for end in range((weeks - 1) * WEEK, weeks * WEEK):  # every window of the last week
            kind, ends = spikes.plan(end, 0, conf)
            base = spikes.baseline_of(kind, [window(e) for e in ends])
            if spikes.verdict(window(end), base, conf):
                found.append(end)
        return found

    found = alerts(cfg)
    # the spike, in the windows that hold its buckets, and nothing else all week: not the
    # opening at 8:00 (×12), not the evening drop, not the weekend
    assert found and set(found) <= set(range(spike_at, spike_at + 5))
    assert spikes.plan(spike_at, 0, cfg)[0] == "seasonal"
    # a baseline of the hours just before (what a hub with no history compares with) would
    # call every morning's opening a spike: the seasonal baseline is what keeps them out
    recent = alerts(SpikesSection(min_weeks=5, weeks=5))
    openings = {(weeks - 1) * WEEK + d * B + 8 * 12 + i for d in range(7) for i in range(4)}
    assert len(set(recent) & openings) >= 5


def test_history_decides_the_baseline_and_min_count_holds():
    cfg = SpikesSection()
    end = 10 * WEEK
    kind, ends = spikes.plan(end, end - 4 * WEEK + 1, cfg)
    assert kind == "seasonal" and len(ends) == 3 * 9  # 3 weeks × (same time ± 1 h, by 15 min)
    # windows reaching before history are left out (the same time itself starts 10 min early)
    assert len(spikes.plan(end, end - 3 * WEEK, cfg)[1]) == 3 * 9 - 5
    assert end - WEEK in ends and end - WEEK - 12 in ends and end - WEEK + 12 in ends
    kind, ends = spikes.plan(end, end - WEEK, cfg)  # one week: too short, the last 2 hours
    assert kind == "recent" and ends == [end - 3 * i for i in range(1, 9)]
    quiet = spikes.baseline_of("recent", [0, 0, 1, 0, 0, 0, 0, 0])
    assert not spikes.verdict(9, quiet, cfg)  # 9 < min_count 10: three messages never alert
    assert spikes.verdict(10, quiet, cfg)


def test_config_mistakes_name_the_key_and_the_fix(tmp_path):
    bad = write_config(tmp_path / "a.yaml", extra="spikes: {bucket: 7m}\n")
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(bad))
    assert "spikes.bucket" in str(e.value) and "5m, 10m, 15m" in str(e.value)
    bad = write_config(tmp_path / "b.yaml", extra="spikes: {window: 12m}\n")
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(bad))
    assert "spikes" in str(e.value) and "multiple of bucket" in str(e.value)
    bad = write_config(tmp_path / "c.yaml", extra="spikes: {staff_group_teams: [sales]}\n")
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(bad))
    assert "spikes.staff_group_teams" in str(e.value) and "no team 'sales'" in str(e.value)
    # the example config documents the defaults as they are
    text = (Path(__file__).parents[2] / "config" / "tongdai.example.yaml").read_text("utf-8")
    example = yaml.safe_load(text)["spikes"]
    assert SpikesSection.model_validate(example) == SpikesSection()


# -- real traffic, two reactors, every destination ------------------------------------------------
@pytest.fixture
def config_file(tmp_path, tg_fake):
    tg_fake.make_forum(STAFF_CHAT)
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=f"""
teams:
  - {{id: support, name: "Hỗ trợ", queues: [general], auto_assign: "off"}}
  - id: billing
    name: "Thanh toán"
    queues: [billing]
    auto_assign: "off"
    staff_group: {{channel: tg-test, chat_id: {STAFF_CHAT}}}
notifications: {{console_url: "https://hub.example.vn"}}
spikes: {{min_count: 5}}
{LOCAL_RECEIVERS}""")


def _history(hub: Hub, weeks: int, per_window: int) -> None:
    """``per_window`` customers in every 15 minutes around this time of the week, for the last
    ``weeks`` weeks, about top-ups on tg-test (counted as the reactor counts)."""
    now, items = now_ms(), []
    for w in range(1, weeks + 1):
        for minutes in range(-75, 80, 5):
            ts = now - w * 7 * 86_400_000 + minutes * 60_000
            for i in range(per_window // 3):
                conv = f"h{w}.{minutes}.{i}"
                items.append((conv, Message("m1", conv, Direction.IN, AuthorKind.CUSTOMER,
                                            "tg-test", ts, ts, text="nạp thẻ", tags=["payment"]),
                              ts))
    spikes.count(hub, items)


def test_a_spike_alerts_once_to_the_console_the_staff_group_and_webhooks(
        client, hub, tg_fake, receiver):
    rec = receiver
    tokens = create_people(hub)
    sub = test_hooks.subscribe(client, tokens["admin"], rec.url, events=["spike.detected"])
    _history(hub, weeks=2, per_window=3)
    for name in ("spikes", "spike_alerts", "hooks"):
        feed.ensure_group(hub, name)
    for i in range(12):  # twelve customers: "the top-up failed"
        assert post(client, tg_update(100 + i, 5000 + i, 1, "nạp thẻ lỗi rồi, mất tiền",
                                      first_name=f"Khách {i}")).status_code == 200
    drain_all(hub)

    # two reactor processes share the feed and check at once; one alert per tag / channel
    other = Hub.from_env()
    start = threading.Barrier(2)

    def reactor(h: Hub, name: str) -> None:
        start.wait()
        while feed.run_once(h, "spikes", spikes.react, name, count=4, claim_idle_ms=0):
            pass
    threads = [threading.Thread(target=reactor, args=a) for a in ((hub, "r1"), (other, "r2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    both = [spikes.evaluate(h, "tag", "payment", alert=True) for h in (hub, other)]
    assert all(c.spike and c.alert is None for c in both)  # still a spike, alerted already
    hub.redis.xgroup_setid(hub.keys.feed(), "spikes", "0")  # the whole feed again: no change
    feed.run_pending(hub, ["spikes"])
    assert spikes.evaluate(hub, "tag", "payment").count == 12

    alerts = spikes.recent_alerts(hub)
    assert sorted((a["dim"], a["value"]) for a in alerts) == [("channel", "tg-test"),
                                                               ("tag", "payment")]
    tag = next(a for a in alerts if a["dim"] == "tag")
    # one spike.detected per alert on the feed: what supervisors' consoles get live (the
    # figures and the broadcast link, no message text)
    live = [e.data for e in feed.decode(hub.redis.xrange(hub.keys.feed()))
            if e.type == "spike.detected"]
    assert sorted(e["value"] for e in live) == ["payment", "tg-test"]
    assert all(e["broadcast_url"].startswith("/console/broadcasts?") and "text" not in str(e)
               for e in live)
    # raised as the count crossed the threshold (3 + 4·√3 ≈ 9.9), while it still grew
    assert 10 <= tag["count"] <= 12 and tag["baseline"] == "seasonal" and tag["median"] == 3
    assert tag["channels"] == ["tg-test"] and len(tag["samples"]) == 3

    # the staff group (the billing team's) gets each alert once, however often it is read
    feed.run_pending(hub, ["spike_alerts", "hooks"])
    hub.redis.xgroup_setid(hub.keys.feed(), "spike_alerts", "0")
    hub.redis.xgroup_setid(hub.keys.feed(), "hooks", "0")
    feed.run_pending(hub, ["spike_alerts", "hooks"])
    posts = [p for p in tg_fake.posts(STAFF_CHAT) if p.startswith("📈")]
    assert len(posts) == 2
    text = next(p for p in posts if "tag payment" in p)
    assert f"{tag['count']} customers in 15 min (usually 3" in text and "nạp thẻ lỗi rồi" in text
    link = text.rsplit("Broadcast to them: ", 1)[1]
    url = urlsplit(link)
    assert (url.netloc, url.path) == ("hub.example.vn", "/console/broadcasts")
    q = parse_qs(url.query)
    assert q["tag"] == ["payment"] and q["channels"] == ["tg-test"]
    assert q["since"][0] < q["until"][0] and q["since"][0].endswith("Z")

    # the integrator gets spike.detected, signed, with the counts and samples
    hookdelivery.deliver_due(hub)
    assert rec.events() == ["spike.detected", "spike.detected"]
    got = next(p["data"]["alert"] for p in rec.payloads()
               if p["data"]["alert"]["dim"] == "tag")
    assert got["count"] == tag["count"] and got["broadcast_url"] == link
    assert all("nạp thẻ lỗi" in s["text"] for s in got["samples"])
    assert sub["events"] == ["spike.detected"]

    # supervisors and admins see them in the API (and live: spike.detected on the stream);
    # samples only from conversations they may see; agents are refused
    r = client.get("/api/v1/spikes", headers=auth(tokens["cuong"]))  # support's supervisor
    assert r.status_code == 200
    item = next(i for i in r.get_json()["items"] if i["dim"] == "tag")
    assert item["samples"] == []  # the customers' conversations are billing's
    assert item["broadcast_url"].startswith("/console/broadcasts?tag=payment&since=")
    r = client.get("/api/v1/spikes", headers=auth(tokens["admin"]))
    item = next(i for i in r.get_json()["items"] if i["dim"] == "tag")
    assert len(item["samples"]) == 3 and item["count"] == tag["count"]
    assert client.get("/api/v1/spikes", headers=auth(tokens["an"])).status_code == 403
    metrics = client.get("/metrics", headers=auth(tokens["admin"])).text
    assert 'tongdai_spike_alerts_total{dim="tag"} 1.0' in metrics
    assert 'tongdai_spike_alerts_total{dim="channel"} 1.0' in metrics
    now = client.get("/api/v1/spikes/now", headers=auth(tokens["admin"])).get_json()
    row = next(i for i in now["items"] if i["value"] == "payment")
    assert row["spike"] and row["count"] == 12 and row["median"] == 3


def test_the_stream_shows_spikes_to_supervisors_only(hub):
    from tongdai.core.workspace.access import Principal
    from tongdai.webhooks.api.events import visible

    ev = feed.FeedEvent("1-0", {"type": "spike.detected", "alert_id": "sp_1_ab", "count": 9})
    sup = Principal("cuong", "supervisor", frozenset({"support"}))
    agent = Principal("an", "agent", frozenset({"support"}))
    assert visible(hub, sup, [ev]) == [ev] and visible(hub, agent, [ev]) == []
    assert spikes.broadcast_path({"dim": "channel", "value": "tg-test", "since_ts": 0,
                                        "until_ts": 900_000, "channels": ["tg-test"]}) == (
        "/console/broadcasts?since=1970-01-01T00:00:00Z&until=1970-01-01T00:15:00Z"
        "&channels=tg-test")


def test_the_cli_lists_alerts_and_checks_the_window_now(hub):
    from click.testing import CliRunner

    from tongdai.core.cli import main

    spikes.count(hub, [(f"c{i}", Message(f"m{i}", f"c{i}", Direction.IN, AuthorKind.CUSTOMER,
                                         "tg-test", now_ms(), now_ms(), tags=["payment"]),
                        now_ms()) for i in range(6)])
    out = CliRunner().invoke(main, ["spikes", "check"])
    assert out.exit_code == 0, out.output
    assert "SPIKE  tag     payment" in out.output and "(recent, 0 windows)" in out.output
    assert "2 checked, 2 spike(s)" in out.output  # the tag and the channel, new: baseline 0
    assert "0 alert(s)" in CliRunner().invoke(main, ["spikes", "list"]).output
    out = CliRunner().invoke(main, ["spikes", "check", "--alert"])
    assert out.output.count("alert sp_") == 2
    out = CliRunner().invoke(main, ["spikes", "list"]).output
    assert "tag payment: 6 customers" in out and "2 alert(s)" in out
    assert "https://hub.example.vn/console/broadcasts?tag=payment&since=" in out
