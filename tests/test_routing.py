"""Routing rules, in order: tags, language, channel, priority and customer attributes → a
team's queue; a default route always exists. And the mistakes the config refuses (routing
rules, the tier ladder), each named with file, key and fix.

The rule order is tested twice: on the Router alone (what Python decides from the message),
and through ingest (a Telegram update posted, the raw log drained), where the ingest script
judges the rules about the customer and the priority the priority rules settle there.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import write_config
from tests.helpers import drain_all, post, tg_update
from tongdai.core.config import ConfigInvalid, HubConfig, load_config
from tongdai.core.pipeline.classify import Classifier

RULES = """
tagging:
  rules:
    - {tag: payment, any: ["nạp thẻ", "top up"]}
    - {tag: refund, any: ["hoàn tiền", "refund"]}
    - {tag: lost, any: ["bị trừ tiền"]}
priority:
  rules:
    - {name: lost, tags_any: [lost], level: 80}
    - {name: gold, customer_tier: [gold], level: 75}
routing:
  default_queue: general
  queues: [general, billing, refunds, vip, urgent, zh]
  rules:
    - {customer: {tier: [vip]}, queue: vip}
    - {priority_min: 70, queue: urgent}
    - {tags_any: [refund], queue: refunds, priority: 40}
    - {tags_any: [payment, refund], queue: billing, priority: 50}
    - {languages: [zh], channels: [tg-test], queue: zh}
"""


def classifier() -> Classifier:
    return Classifier(HubConfig.model_validate(yaml.safe_load(RULES)))


def test_the_first_rule_that_holds_picks_the_queue_and_the_highest_gives_the_priority():
    c = classifier().classify("mình muốn hoàn tiền cho lần nạp thẻ hôm qua", "tg-test")
    assert (c.queue, c.route.rule) == ("refunds", 2)      # listed before billing
    assert (c.priority, c.route.priority_rule) == (50, 3)  # billing's is higher
    c = classifier().classify("nạp thẻ không được", "tg-test")
    assert (c.queue, c.priority) == ("billing", 50)


def test_no_rule_holds_the_default_route():
    c = classifier().classify("xin chào shop", "tg-test")
    assert (c.queue, c.route.rule, c.priority) == ("general", None, 0)
    c = classifier().classify("你好，我想问一下", "other-channel")  # zh, but not that channel
    assert c.queue == "general"
    assert classifier().classify("你好，我想问一下", "tg-test").queue == "zh"


def test_priority_conditions_are_decided_by_what_the_priority_can_still_become():
    # money lost: 80 for certain, so priority_min 70 holds (only the vip rule stays open)
    c = classifier().classify("tài khoản bị trừ tiền", "tg-test")
    assert (c.priority, c.queue, c.route.rule) == (80, "urgent", 1)
    assert [r.split("\x1f")[0] for r in c.routes.split("\x1e")] == ["vip"]
    # 50 now, 75 if the customer is gold: the ingest script decides
    c = classifier().classify("nạp thẻ không được", "tg-test")
    assert [r.split("\x1f")[:2] for r in c.routes.split("\x1e")] == [["vip", ""],
                                                                     ["urgent", "70"]]
    router = classifier().router
    assert router.decide(c.route, 75, {"tier": "gold"}).queue == "urgent"
    assert router.decide(c.route, 50, {}).queue == "billing"
    assert router.decide(c.route, 50, {"tier": "vip"}).queue == "vip"


@pytest.fixture
def config_file(tmp_path):
    """The tests' Telegram channel (conftest), its routing section replaced by this one."""
    path = write_config(tmp_path / "tongdai.yaml")
    text = path.read_text("utf-8")
    start, end = text.index("routing:"), text.index("channels:")
    path.write_text(text[:start] + """priority:
  rules:
    - {name: gold, customer_tier: [gold], level: 75}
routing:
  default_queue: general
  queues: [general, billing, vip, urgent]
  rules:
    - {customer: {tier: [vip]}, queue: vip}
    - {priority_min: 70, queue: urgent}
    - {tags_any: [payment], queue: billing, priority: 50}
""" + text[end:], encoding="utf-8")
    return path


def conversation_queue(client, hub, chat: int, text: str, tier: str | None = None) -> str:
    """A customer (of ``tier``, set before their conversation opens) writes ``text``."""
    if tier is not None:  # a customer known from before: their record exists
        post(client, tg_update(chat * 10, chat, chat * 10, "/start"))
        drain_all(hub)
        cust = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
        hub.redis.hset(hub.keys.customer(cust), "tier", tier)
        conv = hub.redis.hget(hub.keys.customer(cust), "conv").decode()
        hub.redis.hset(hub.keys.conversation(conv), mapping={"status": "resolved",
                                                             "resolved_at": 1})  # long ago
    post(client, tg_update(chat * 10 + 1, chat, chat * 10 + 1, text))
    drain_all(hub)
    cust = hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()
    conv = hub.redis.hget(hub.keys.customer(cust), "conv").decode()
    queue = hub.redis.hget(hub.keys.conversation(conv), "queue").decode()
    assert hub.redis.zscore(hub.keys.queue(queue), conv) is not None  # filed where it says
    return queue


def test_ingest_judges_customer_and_priority_rules_in_order(client, hub):
    assert conversation_queue(client, hub, 801, "nạp thẻ không được") == "billing"
    assert conversation_queue(client, hub, 802, "xin chào") == "general"
    # a VIP: the first rule, whatever the message says
    assert conversation_queue(client, hub, 803, "nạp thẻ không được", tier="vip") == "vip"
    # gold: priority 75 (judged by the script), so priority_min 70 holds before billing
    assert conversation_queue(client, hub, 804, "nạp thẻ không được", tier="gold") == "urgent"
    assert conversation_queue(client, hub, 805, "xin chào", tier="silver") == "general"


# -- what the config refuses ------------------------------------------------------------------
def errors_of(tmp_path, text: str) -> list:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigInvalid) as exc:
        load_config(str(p))
    for e in exc.value.errors:
        assert e.file == str(p) and e.key and e.fix
    return exc.value.errors


QUEUES = "routing:\n  queues: [general, billing, security, managers]\n"


def test_a_rule_on_the_customer_gives_no_priority_and_knows_its_attributes(tmp_path):
    (err,) = errors_of(tmp_path, QUEUES + "  rules:\n"
                       "    - {customer: {tier: [vip]}, queue: billing, priority: 60}\n")
    assert err.key == "routing.rules[0].priority" and "priority.rules" in err.fix
    (err,) = errors_of(tmp_path, QUEUES + "  rules:\n"
                       "    - {customer: {plan: [pro]}, queue: billing}\n")
    assert err.key == "routing.rules[0].customer" and "unknown customer attribute 'plan'" \
        in err.problem


TEAMS = QUEUES + """
teams:
  - {id: support, queues: [general], tier: 1, escalates_to: %s}
  - {id: billing, queues: [billing], tier: 2, escalates_to: %s}
  - {id: managers, queues: [managers], tier: 3}
"""


def test_the_tier_ladder_is_checked(tmp_path):
    (err,) = errors_of(tmp_path, TEAMS % ("[billing, payments]", "[managers]"))
    assert (err.key, err.problem) == ("teams[support].escalates_to[1].team", "no team 'payments'")
    assert "team id" in err.fix
    (err,) = errors_of(tmp_path, TEAMS % ("[billing]", "[support]"))
    assert err.key == "teams[support].escalates_to"
    assert err.problem == "escalation goes round in a circle: support → billing → support"
    (err,) = errors_of(tmp_path, TEAMS.replace("queues: [managers], tier: 3",
                                               "queues: [managers], tier: 2")
                       % ("[managers]", "[managers]"))
    assert err.key == "teams[billing].escalates_to[0].team"
    assert "tier 2, not above this team's tier 2" in err.problem
    (err,) = errors_of(tmp_path, TEAMS % ("[{team: billing, tags_any: [payment]}]", "[]"))
    assert err.key == "teams[support].escalates_to[0]" and "without conditions" in err.fix
    (err,) = errors_of(tmp_path, TEAMS.replace("queues: [managers]", "queues: [billing]")
                       % ("[billing]", "[managers]"))
    assert err.key == "teams[managers].queues" and "belongs to one tier" in err.problem


def test_a_good_ladder_loads(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text(TEAMS % ("[{team: billing, customer: {tier: [vip]}}, managers]", "[managers]"),
                 encoding="utf-8")
    teams = {t.id: t for t in load_config(str(p)).hub.teams}
    assert [s.team for s in teams["support"].escalates_to] == ["billing", "managers"]
    assert teams["support"].escalates_to[0].customer == {"tier": ["vip"]}


def test_rules_test_shows_the_route_the_customer_would_get(config_file):
    import os
    import subprocess
    import sys

    def route(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "rules", "test", *args],
                             env={**os.environ, "TONGDAI_CONFIG": str(config_file)},
                             capture_output=True, text=True, timeout=60, check=True)
        return next(x for x in out.stdout.splitlines() if x.startswith("route"))

    assert route("nạp thẻ lỗi", "--channel", "tg-test") == "route     billing   (routing rule 3)"
    assert route("nạp thẻ lỗi", "--tier", "gold") == "route     urgent   (routing rule 2)"
    assert route("xin chào", "--tier", "vip") == "route     vip   (routing rule 1)"
