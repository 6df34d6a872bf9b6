"""Language and keyword tags on real-looking Vietnamese, Chinese and English support text."""

import pytest
from pydantic import ValidationError

from tongdai.core.config import RoutingSection, TaggingSection
from tongdai.core.pipeline.language import detector
from tongdai.core.pipeline.routing import Router
from tongdai.core.pipeline.tagging import Tagger, fold


def lang(text: str) -> str | None:
    return detector().detect(text).language


@pytest.mark.parametrize("text,expected", [
    ("Shop ơi, nạp thẻ 100k mà chưa nhận được xu", "vi"),
    ("shop oi nap the 100k ma chua nhan duoc xu", "vi"),  # typed without diacritics
    ("minh khong dang nhap duoc tai khoan", "vi"),
    ("em can ho tro gap", "vi"),  # lingua alone says English
    ("ship cod dc ko", "vi"),  # chat abbreviations
    ("mk bi khoa tk r", "vi"),
    ("我的充值还没到账", "zh-Hans"),
    ("客服你好，请问怎么退款", "zh-Hans"),
    ("無法登錄", "zh-Hant"),
    ("請問怎麼退款", "zh-Hant"),
    ("我要退款", "zh"),  # the same characters in both scripts: nobody can tell
    ("我要refund", "zh"),  # mixed: the main language
    ("shop ơi 退款 được không", "vi"),
    ("Hello, I paid but my order is not here", "en"),
    ("Hi, my name is Nguyễn and my order is late", "en"),  # a Vietnamese name in English
    ("ok", None),
    ("👍", None),
    ("0912345678", None),
])
def test_detect_language(text, expected):
    assert lang(text) == expected


def test_the_detector_is_built_once_per_process():
    assert detector() is detector(("vi", "zh", "en"), "low")
    assert Tagger(TaggingSection()).detector is Tagger(TaggingSection()).detector


def test_fold_removes_vietnamese_diacritics_and_d_stroke():
    assert fold("HOÀN TIỀN Đơn") == "hoan tien don"


def tagger(*rules: dict) -> Tagger:
    return Tagger(TaggingSection(rules=list(rules)))


def test_keyword_rules_match_with_or_without_diacritics_and_whole_words():
    t = tagger({"tag": "refund", "any": ["hoàn tiền", "refund", "退款"]},
               {"tag": "card", "any": ["the cao"]})
    assert t.tags("cho em hoan tien voi")[0] == ["refund", "lang:vi"]
    assert t.tags("HOÀN TIỀN giúp em")[0] == ["refund", "lang:vi"]
    assert t.tags("请帮我退款")[0] == ["refund", "lang:zh", "lang:zh-Hans"]
    assert "refund" not in t.tags("refunded? no, unrefundable")[0]
    assert t.tags("mua thẻ cào ở đâu")[0][0] == "card"


@pytest.mark.parametrize("text", [
    "Tài khoản của em bị trừ tiền 2 lần",
    "tai khoan cua em bi tru tien 2 lan",
    "TK BỊ TRỪ TIỀN",
    "ad ơi e bi tru tien r",
])
def test_vietnamese_matches_without_case_or_diacritics(text):
    t = tagger({"tag": "money-lost", "any": ["bị trừ tiền", "mất tiền"]})
    assert "money-lost" in t.tags(text)[0]


def test_marks_must_agree_where_both_sides_have_them():
    t = tagger({"tag": "urgent", "any": ["gấp"]}, {"tag": "cancel", "any": ["hủy đơn"]})
    assert "urgent" in t.tags("em cần hỗ trợ gấp")[0]
    assert "urgent" in t.tags("em can ho tro gap")[0]  # bare text: could be either
    assert "urgent" not in t.tags("cho em gặp nhân viên")[0]  # "gặp" (meet) is not "gấp"
    assert "cancel" in t.tags("huỷ đơn giúp em")[0]  # old tone placement, same word


def test_chat_abbreviations_are_spelled_out_in_vietnamese():
    t = tagger({"tag": "delivery", "any": ["không nhận được hàng"]},
               {"tag": "locked", "any": ["khóa tài khoản"]})
    assert "delivery" in t.tags("ko nhan dc hang")[0]
    assert "locked" in t.tags("bi khoa tk r ad oi")[0]


@pytest.mark.parametrize("text", ["無法登錄", "無法登入", "无法登录", "我的帳號無法登錄了"])
def test_traditional_and_simplified_alike(text):
    t = tagger({"tag": "login", "any": ["登录"]})
    assert "login" in t.tags(text)[0]


def test_a_rule_written_in_traditional_matches_simplified():
    t = tagger({"tag": "hacked", "any": ["帳號被盜"]})
    assert "hacked" in t.tags("我的账号被盗了，怎么办")[0]
    assert "hacked" in t.tags("帳號被盜了")[0]


def test_mixed_text():
    t = tagger({"tag": "refund", "any": ["refund", "退款"]}, {"tag": "hacked", "any": ["hack"]})
    assert t.tags("我要refund")[0] == ["refund", "lang:zh"]
    assert t.tags("账号被hack了")[0] == ["hacked", "lang:zh", "lang:zh-Hans"]
    assert t.tags("em muốn refund đơn 123")[0] == ["refund", "lang:vi"]


def test_none_keywords_stop_a_rule():
    t = tagger({"tag": "delivery", "any": ["还没到"], "none": ["到账"]})
    assert "delivery" in t.tags("我的快递还没到")[0]
    assert "delivery" not in t.tags("我的充值还没到账")[0]


def test_rule_order_tags_in_rule_order_and_the_first_rule_names_the_keyword():
    t = tagger({"tag": "b", "any": ["refund"]}, {"tag": "a", "any": ["hoàn tiền"]},
               {"tag": "b", "any": ["hoàn tiền"]})
    found = t.classify("hoàn tiền hoặc refund")
    assert found.tags == ["b", "a", "lang:vi"]
    assert found.fired == {"b": (0, "refund"), "a": (1, "hoàn tiền")}


def test_routing_first_rule_queue_highest_priority():
    r = Router(RoutingSection(queues=["general", "billing", "vip"], rules=[
        {"tags_any": ["refund"], "queue": "billing", "priority": 50},
        {"languages": ["zh"], "queue": "vip", "priority": 80}]))
    route = r.route("tg", ["refund"], "zh")
    assert route.queue == "billing" and route.priority == 80
    assert (route.rule, route.priority_rule) == (0, 1)
    assert r.route("tg", [], "vi").queue == "general"
    assert r.route("tg", [], "zh-Hant").queue == "vip"  # zh covers both scripts


def test_language_settings_are_checked():
    with pytest.raises(ValidationError):
        TaggingSection(languages=["vi", "xx"])
    with pytest.raises(ValidationError):
        TaggingSection(language_accuracy="medium")
