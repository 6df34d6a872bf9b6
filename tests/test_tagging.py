"""Language and keyword tags on real-looking Vietnamese, Chinese and English support text."""

import pytest

from tongdai.core.config import RoutingSection, TaggingSection
from tongdai.core.pipeline.routing import Router
from tongdai.core.pipeline.tagging import Tagger, detect_language, fold


@pytest.mark.parametrize("text,lang", [
    ("Shop ơi, nạp thẻ 100k mà chưa nhận được xu", "vi"),
    ("shop oi nap the 100k ma chua nhan duoc xu", "vi"),  # typed without diacritics
    ("minh khong dang nhap duoc tai khoan", "vi"),
    ("我的充值还没到账", "zh"),
    ("客服你好，请问怎么退款", "zh"),
    ("Hello, I paid but my order is not here", "en"),
    ("ok", None),
    ("👍", None),
])
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_fold_removes_vietnamese_diacritics_and_d_stroke():
    assert fold("HOÀN TIỀN Đơn") == "hoan tien don"


def test_keyword_rules_match_with_or_without_diacritics_and_whole_words():
    t = Tagger(TaggingSection(rules=[{"tag": "refund", "any": ["hoàn tiền", "refund", "退款"]},
                                     {"tag": "card", "any": ["the cao"]}]))
    assert t.tags("cho em hoan tien voi")[0] == ["refund", "lang:vi"]
    assert t.tags("HOÀN TIỀN giúp em")[0] == ["refund", "lang:vi"]
    assert t.tags("请帮我退款")[0] == ["refund", "lang:zh"]
    assert "refund" not in t.tags("refunded? no, unrefundable")[0]
    assert t.tags("mua thẻ cào ở đâu")[0][0] == "card"


def test_routing_first_rule_queue_highest_priority():
    r = Router(RoutingSection(queues=["general", "billing", "vip"], rules=[
        {"tags_any": ["refund"], "queue": "billing", "priority": 50},
        {"languages": ["zh"], "queue": "vip", "priority": 80}]))
    route = r.route("tg", ["refund"], "zh")
    assert route.queue == "billing" and route.priority == 80
    assert r.route("tg", [], "vi").queue == "general"
