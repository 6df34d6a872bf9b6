"""The Facebook adapter on its own: fixtures in, events out; sends against a fake Graph API."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError
from werkzeug.datastructures import Headers, MultiDict

from tests.fakes.facebook_graph import DEFAULT_APP_SECRET, DEFAULT_TOKEN, FakeGraphAPI
from tongdai.adapters.base import OutboundMessage
from tongdai.adapters.facebook import SIGNATURE_HEADER, FacebookAdapter
from tongdai.core.errors import DeliveryError, Forbidden, PayloadError, SignatureError, WindowClosed
from tongdai.core.models import Attachment, AuthorKind, Direction, EventKind, InboundEvent, RawEvent
from tongdai.core.registry import resolve_adapter

FIXTURES = Path(__file__).parent / "fixtures" / "facebook"
TOKEN, APP_SECRET = DEFAULT_TOKEN, DEFAULT_APP_SECRET
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
VERIFY_TOKEN = "tongdai-verify_42"
PAGE = "104857600123456"
RECEIVED_MS = 1_700_000_000_123
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


def make_adapter(
    graph_base: str = "https://graph.facebook.com/v25.0",
    token: str = TOKEN,
    app_secret: str = APP_SECRET,
) -> FacebookAdapter:
    settings = FacebookAdapter.Settings(
        page_id=PAGE,
        page_access_token=token,
        app_secret=app_secret,
        verify_token=VERIFY_TOKEN,
        graph_base=graph_base,
    )
    return FacebookAdapter("fb-test", settings, http=httpx.Client(timeout=5.0))


def parse_body(body: bytes) -> list[InboundEvent]:
    return make_adapter().parse(RawEvent("fb-test", body, {}, RECEIVED_MS))


def sign(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: "sha256=" + hmac.new(secret.encode(), body, "sha256").hexdigest()}


# -- reading the fixtures as they are ----------------------------------------------------------
# Corpus files are kept verbatim: JSONL, log lines and code comments with bodies (or bare
# messaging items) inside, and docs examples that are not strict JSON. This loader finds the
# bodies in them; it never rewrites a file.
def _docs_json(text: str) -> str:
    """Undo the docs' shorthand: '...' lines, trailing commas, \\u{2764} escapes."""
    text = re.sub(r"(?m)^\s*\.\.\.\s*$\n?", "", text)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return re.sub(r"\\u\{([0-9A-Fa-f]+)\}", lambda m: chr(int(m.group(1), 16)), text)


def _shape(value: Any) -> str | None:
    if isinstance(value, list):
        return "items" if value and all(_shape(v) == "item" for v in value) else None
    if not isinstance(value, dict):
        return None
    if "object" in value:
        return "body"
    if "messaging" in value or "standby" in value:
        return "entry"
    if "field" in value and "value" in value:
        return "change"
    return "item" if "sender" in value or "recipient" in value else None


def _as_body(value: Any, shape: str) -> bytes:
    """A bare entry, item(s) or dashboard change, wrapped in the envelope Meta sends."""
    if shape == "entry":
        return orjson.dumps({"object": "page", "entry": [value]})
    if shape == "change":
        entry = {"id": "0", "time": 0, "changes": [value]}
        return orjson.dumps({"object": "page", "entry": [entry]})
    items = value if shape == "items" else [value]
    ts = items[0].get("timestamp")
    entry = {"id": "0", "time": ts if isinstance(ts, int) else 0, "messaging": items}
    return orjson.dumps({"object": "page", "entry": [entry]})


_OPENING = re.compile(r"[\[{]")


def _embedded(text: str) -> list[tuple[str, Any, str]]:
    """The bodies, entries and items found in free text, in order: (slice, value, shape)."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while (m := _OPENING.search(text, i)) is not None:
        try:
            value, end = decoder.raw_decode(text, m.start())
        except ValueError:
            i = m.start() + 1
            continue
        if (shape := _shape(value)) is None:
            i = m.start() + 1  # something smaller may sit inside (a truncated body's tail)
            continue
        found.append((text[m.start() : end], value, shape))
        i = end
    return found


def load_bodies(path: Path) -> list[bytes]:
    """Every webhook body a fixture file holds; whole bodies keep their exact bytes."""
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        return [line for line in raw.splitlines() if line.strip()]
    if path.suffix == ".json":
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = orjson.loads(_docs_json(raw.decode()))
        shape = _shape(value)
        assert shape is not None, path.name
        return [raw] if shape == "body" else [_as_body(value, shape)]
    # .txt: bodies quoted in single-quoted string literals (a Python repr, PHP) have their
    # \\ escapes doubled; undo that so '\\/' reads as JSON's '\/'.
    text = raw.decode().replace("\\\\", "\\")
    return [
        s.encode() if shape == "body" else _as_body(v, shape) for s, v, shape in _embedded(text)
    ]


def fixture_events(stem: str) -> list[list[InboundEvent]]:
    path = next(p for p in FIXTURES.iterdir() if p.stem == stem)  # never X.source.txt
    return [parse_body(body) for body in load_bodies(path)]


# -- every fixture ----------------------------------------------------------------------------
def ev(kind: EventKind, key: str, user: str, **attrs: Any) -> dict[str, Any]:
    """The expected attributes of one event; unnamed ones take their defaults."""
    return {"kind": kind, "dedupe_key": key, "external_user_id": user, "address": user} | attrs


M, D, R = EventKind.MESSAGE, EventKind.DELIVERY, EventKind.READ
OUT = {"direction": Direction.OUT, "platform_type": "message_echo"}
U2, U3, U4 = "1066835436691078", "1078614338912257", "1920030624688511"
U6, U7 = "1595878670725308", "2170490766313202"
LAN, MINH, HOA = "7012345678901234", "7012345678905678", "7012345678909012"
LIKE_STICKER = 369239263222822
STICKER_URL = "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595_n.png"
TEMPLATE = {
    "template_type": "generic",
    "sharable": False,
    "elements": [
        {
            "title": "abc",
            "buttons": [{"type": "postback", "url": None, "title": "abecadło", "payload": "test"}],
        }
    ],
}

# stem -> one list of expected events per body in the file.
EXPECTED: dict[str, list[list[dict[str, Any]]]] = {
    "01_text_escaped_unicode_with_sha1_sig": [
        [
            ev(
                M,
                "m:mid.1460923697625:5c96e8279b55505308",
                "982337261802700",
                text="Test äëï",
                platform_ts_ms=1460923697635,
                external_message_id="mid.1460923697625:5c96e8279b55505308",
                platform_type="message",
            )
        ]
    ],
    "02_seq_2016_text_echo_delivery_read_postback_optin": [
        [
            ev(
                M,
                "m:mid.1468152703527:6600c706f15a292027",
                U2,
                text="test",
                platform_ts_ms=1468152703534,
            )
        ],
        [
            ev(
                M,
                "m:mid.1468152706286:e7982eb7618034a075",
                U2,
                text=None,
                **OUT,
                attachments=[Attachment("template", name="abc", meta=TEMPLATE)],
            )
        ],
        # timestamp 0 in the original: the watermark says when
        [
            ev(
                D,
                f"d:{U2}:1468152706921",
                U2,
                target_ids=["m:mid.1468152706286:e7982eb7618034a075"],
                watermark_ms=1468152706921,
                platform_ts_ms=1468152706921,
            )
        ],
        [
            ev(
                R,
                f"r:{U2}:1468152706921",
                U2,
                watermark_ms=1468152706921,
                target_ids=[],
                platform_ts_ms=1468152897070,
            )
        ],
        [ev(EventKind.POSTBACK, f"pb:{U2}:1468152897212", U2, payload="test", text=None)],
        [ev(EventKind.UNSUPPORTED, f"u:{U2}:1468152897212:optin", U2, platform_type="optin")],
    ],
    "03_vietnamese_text_and_echo_2016": [
        [
            ev(
                M,
                "m:mid.1474009466121:220c1279719466a349",
                U3,
                text="ờ",
                platform_ts_ms=1474009466130,
            )
        ],
        # (the truncated echo between them is not a body: see 03b)
        [
            ev(
                D,
                f"d:{U3}:1474009537404",
                U3,
                target_ids=["m:mid.1474009537378:e32abf7e4ec0571e00"],
                platform_ts_ms=1474009537404,
            )
        ],
        # a Page feed comment (changes[], not messaging[]): kept, unsupported
        [
            {
                "kind": EventKind.UNSUPPORTED,
                "platform_type": "feed",
                "address": None,
                "external_user_id": "536069159937612",
                "platform_ts_ms": 1474009827000,
                "dedupe_key": lambda key: key.startswith("c:feed:"),
            }
        ],
    ],
    "03b_vietnamese_echo_rebuilt": [
        [
            ev(
                M,
                "m:mid.1474009537378:e32abf7e4ec0571e00",
                U3,
                text="có gì hot",
                **OUT,
                platform_ts_ms=1474009537404,
            )
        ]
    ],
    "04_customer_chat_plugin_sequence_2018": [
        [
            ev(
                D,
                f"d:{U4}:1519747901688",
                U4,
                target_ids=["m:mid.$cAADXuZMmdtFoCU3w-Fh2AioO-626"],
                watermark_ms=1519747901688,
                platform_ts_ms=1519747902068,
            )
        ],
        [ev(M, "m:mid.$cAADXuZMmdtFoCU4cjlh2AjUBM2Xp", U4, text="text")],
        [ev(D, f"d:{U4}:1519747914028", U4, target_ids=["m:mid.$cAADXuZMmdtFoCU4hLFh2AjYc0xJp"])],
        [ev(M, "m:mid.$cAADXuZMmdtFoCU6Jn1h2AlArVJt2", U4, text="welcome")],
        [ev(D, f"d:{U4}:1519747942012", U4, target_ids=["m:mid.$cAADXuZMmdtFoCU6OfFh2AlFeC7BQ"])],
        [
            ev(
                M,
                "m:mid.$cAADXuZMmdtFoCU6jilh2Ala6aTrA",
                U4,
                text="button",
                platform_ts_ms=1519747947402,
            )
        ],
    ],
    "05_sticker_thumbsup_and_postback_2018": [
        [
            ev(
                M,
                "m:mid.$cAADXuZMmdtFoBQmKQ1h08RBO4nN3",
                U4,
                text=None,
                platform_ts_ms=1519676310083,
                attachments=[
                    Attachment(
                        "sticker",
                        url="https://scontent-dft4-2.xx.fbcdn.net/v/t39.1997-6"
                        "/851557_369239266556155_759568595_n.png?_nc_ad=z-m&_nc_cid=0&oh="
                        "557fb26a3950519bda159df1f43bd7b5&oe=5B1451DC",
                        meta={"sticker_id": LIKE_STICKER},
                    )
                ],
            )
        ],
        [
            ev(
                EventKind.POSTBACK,
                f"pb:{U4}:1519684168995",
                U4,
                payload="First button",
                text="First button",
            )
        ],
    ],
    "06_text_and_sticker_batch_2016": [
        [ev(M, "m:mid.1463910214622:c27bc02ff9b9a98c22", U6, text="Hey")],
        [
            ev(
                M,
                "m:mid.1463910455008:68160c45703c925412",
                U6,
                text=None,
                attachments=[
                    Attachment(
                        "sticker",
                        url="https://fbcdn-dragon-a.akamaihd.net/hphotos-ak-xfa1/t39.1997-6/"
                        "851557_369239266556155_759568595_n.png",
                        meta={"sticker_id": LIKE_STICKER},
                    )
                ],
            ),
            ev(
                M,
                "m:mid.1463910479218:dcf4367d3dcbd4ac22",
                U6,
                text="gg",
                platform_ts_ms=1463910479224,
            ),
        ],
    ],
    "07_echo_with_app_id_2018": [
        [
            ev(
                M,
                "m:x5H7P1urGQClq3UqwO2-56k-EwydcvFMcwgoN0TZpwhIHWusvaZhm7NEcQlZtQhvQ8FDJcgUnufx3TIPNDr"
                "DKQ",
                U7,
                text="Hu",
            )
        ],
        [
            ev(
                M,
                "m:P5yMBfOtxnp36A4xgcYZtqk-EwydcvFMcwgoN0TZpwi3MDfye3xdCYCWOzZ5gtIVxjEbTuYXOJRcW03Aom3"
                "Lrw",
                U7,
                text="Hi there!",
                **OUT,
                platform_ts_ms=1534988073579,
            )
        ],
    ],
    "10_docs_messages_text_quick_reply": [
        [
            ev(
                M,
                "m:mid.1457764197618:41d102a3e1ae206a38",
                "<PSID>",
                text="hello, world!",
                payload="<DEVELOPER_DEFINED_PAYLOAD>",
                platform_ts_ms=1458692752478,
            )
        ]
    ],
    "11_docs_messages_reply_to": [
        [
            ev(
                M,
                "m:m_1457764197618:41d102a3e1ae206a38",
                "<PSID>",
                text="hello, world!",
                reply_to="m:m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU",
            )
        ]
    ],
    "12_docs_messages_attachment_entry": [
        [
            ev(
                M,
                "m:mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
                "<PSID>",
                text=None,
                platform_ts_ms=1518479195308,
                attachments=[
                    Attachment(
                        "file",
                        url="<ATTACHMENT_URL>",
                        meta={"type": "<image|video|audio|file|reel|ig_reel>"},
                    )
                ],
            )
        ]
    ],
    # the docs elide the content ('...'): an echo of nothing known, kept as unsupported
    "13_docs_message_echoes": [
        [ev(EventKind.UNSUPPORTED, "m:mid.1457764197618:41d102a3e1ae206a38", "<PSID>", **OUT)]
    ],
    "14_docs_message_deliveries": [
        [
            ev(
                D,
                "d:<PSID>:1458668856253",
                "<PSID>",
                target_ids=["m:mid.1458668856218:ed81099e15d3f4f233"],
                watermark_ms=1458668856253,
                platform_ts_ms=1458668856253,
            )
        ]
    ],
    "15_docs_message_reads": [
        [
            ev(
                R,
                "r:<PSID>:1458668856253",
                "<PSID>",
                watermark_ms=1458668856253,
                platform_ts_ms=1458668856463,
            )
        ]
    ],
    "16_docs_message_reactions": [
        [
            ev(
                EventKind.REACTION,
                "x:<MID_OF_ReactedTo_Message>:<PSID>:1458668856463",
                "<PSID>",
                target_ids=["m:<MID_OF_ReactedTo_Message>"],
                reaction="\u2764\ufe0f",
            )
        ]
    ],
    "17_docs_message_edits": [
        [
            ev(
                EventKind.EDIT,
                "e:<MESSAGE_ID>:<INT>",
                "<PSID>",
                target_ids=["m:<MESSAGE_ID>"],
                text="<TEXT>",
                platform_ts_ms=1458668856463,
            )
        ]
    ],
    # the dashboard's test shape: a plugin guest (user_ref) and a timestamp in seconds, as text
    "18_docs_messaging_postbacks": [
        [
            ev(
                EventKind.POSTBACK,
                "m:m_MESSAGE-ID",
                "user_ref:USER-REF-ID",
                payload="USER-DEFINED-PAYLOAD",
                text="TITLE-FOR-THE-CTA",
                external_message_id="m_MESSAGE-ID",
                platform_ts_ms=1527459824000,
            )
        ]
    ],
    "20_docs_batched_two_entries": [
        [
            ev(
                M,
                "m:m_batch-1-AaBbCc",
                LAN,
                text="Shop ơi, còn size M không?",
                platform_ts_ms=1732346399950,
            ),
            ev(R, f"r:{MINH}:1732346300000", MINH, watermark_ms=1732346300000),
            ev(
                D,
                f"d:{LAN}:1732346400120",
                LAN,
                target_ids=["m:m_page-reply-77"],
                watermark_ms=1732346400120,
                platform_ts_ms=1732346400150,
            ),
            ev(
                EventKind.POSTBACK,
                "m:m_postback-9-XyZ",
                HOA,
                payload="ORDER_LOOKUP",
                text="Tra cứu đơn hàng",
            ),
        ]
    ],
    "21_docs_message_edit_body": [
        [
            ev(
                EventKind.EDIT,
                "e:m_batch-1-AaBbCc:1",
                LAN,
                target_ids=["m:m_batch-1-AaBbCc"],
                text="Shop ơi, còn size L không?",
                platform_ts_ms=1732350000400,
            )
        ]
    ],
    "22_docs_reaction_react": [
        [
            ev(
                EventKind.REACTION,
                f"x:m_page-reply-77:{LAN}:1732350100400",
                LAN,
                reaction="❤️",
                target_ids=["m:m_page-reply-77"],
            )
        ]
    ],
    "23_docs_reaction_unreact": [
        [
            ev(
                EventKind.REACTION,
                f"x:m_page-reply-77:{LAN}:1732350200400",
                LAN,
                reaction=None,
                target_ids=["m:m_page-reply-77"],
            )
        ]
    ],
    "24_docs_sticker_transition": [
        [
            ev(
                M,
                "m:m_sticker-both-types",
                MINH,
                text=None,
                attachments=[
                    Attachment("sticker", url=STICKER_URL, meta={"sticker_id": LIKE_STICKER})
                ],
            )
        ]
    ],
    "25_docs_sticker_type_only": [
        [
            ev(
                M,
                "m:m_sticker-new-type",
                MINH,
                attachments=[
                    Attachment("sticker", url=STICKER_URL, meta={"sticker_id": LIKE_STICKER})
                ],
            )
        ]
    ],
    "26_docs_delivery_mids_watermark": [
        [
            ev(
                D,
                f"d:{LAN}:1732350300350",
                LAN,
                target_ids=["m:m_page-reply-77", "m:m_page-reply-78"],
                watermark_ms=1732350300350,
                platform_ts_ms=1732350300400,
            )
        ]
    ],
    "27_text_vietnamese_escaped": [
        [
            ev(
                M,
                "m:m_vi-text-1",
                LAN,
                text="Cho mình hỏi đơn hàng #1234 đã giao chưa ạ? Cảm ơn shop 🙏",
                external_message_id="m_vi-text-1",
                platform_ts_ms=1732351000400,
            )
        ]
    ],
    "28_docs_standby_echo": [
        [
            ev(
                M,
                "m:qT7ywaKpO9kkQR7Gv-nM8LIfLZDamVrALniheUYEDdHJXjDXEAyaS1xxONzb2Iv-DFzmTihfWJV012P5pK0AhQ",
                HOA,
                text="Dạ shop kiểm tra rồi ạ",
                **OUT,
            )
        ]
    ],
    "29_docs_fallback_link": [
        [
            ev(
                M,
                "m:m_shared-link-1",
                HOA,
                text=None,
                attachments=[
                    Attachment(
                        "link",
                        url="https://shop.example.com/doi-tra",
                        meta={"title": "Chính sách đổi trả"},
                    )
                ],
            )
        ]
    ],
}
DEFAULTS: dict[str, Any] = {
    "direction": Direction.IN,
    "attachments": [],
    "reply_to": None,
    "payload": None,
    "reaction": None,
}


def test_every_fixture_has_an_expectation_and_a_source() -> None:
    payloads = {p.stem for p in FIXTURES.iterdir() if not p.name.endswith(".source.txt")}
    assert payloads == set(EXPECTED)
    assert all((FIXTURES / f"{n}.source.txt").exists() for n in payloads)


def test_corpus_files_are_copied_unchanged() -> None:
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "facebook"
    if not corpus.exists():
        pytest.skip("the shared corpus is not beside this checkout")
    for original in corpus.iterdir():
        assert (FIXTURES / original.name).read_bytes() == original.read_bytes(), original.name


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_fixture_parses_to_expected_events(stem: str) -> None:
    got = fixture_events(stem)
    assert [len(events) for events in got] == [len(events) for events in EXPECTED[stem]]
    for events, expected in zip(got, EXPECTED[stem], strict=True):
        for event, want in zip(events, expected, strict=True):
            for attr, value in (DEFAULTS | want).items():
                actual = getattr(event, attr)
                assert value(actual) if callable(value) else actual == value, (stem, attr, actual)


def test_batched_bodies_yield_every_event_of_every_entry() -> None:
    (events,) = fixture_events("20_docs_batched_two_entries")
    assert [e.kind for e in events] == [M, R, D, EventKind.POSTBACK]
    assert {e.external_user_id for e in events} == {LAN, MINH, HOA}
    (_, batch) = fixture_events("06_text_and_sticker_batch_2016")
    assert len(batch) == 2  # two messaging[] items in one entry


def test_receipts_and_echoes_name_the_message_they_are_about() -> None:
    _, (echo,), (delivery,), *_ = fixture_events(
        "02_seq_2016_text_echo_delivery_read_postback_optin"
    )
    assert delivery.target_ids == [echo.dedupe_key]
    (rebuilt,) = fixture_events("03b_vietnamese_echo_rebuilt")[0]
    assert fixture_events("03_vietnamese_text_and_echo_2016")[1][0].target_ids == [
        rebuilt.dedupe_key
    ]
    (edit,) = fixture_events("21_docs_message_edit_body")[0]
    first = fixture_events("20_docs_batched_two_entries")[0][0]
    assert edit.target_ids == [first.dedupe_key]


def test_docs_examples_that_are_not_json_are_rejected_as_they_are() -> None:
    for stem in ("13_docs_message_echoes", "16_docs_message_reactions", "17_docs_message_edits"):
        with pytest.raises(PayloadError):
            make_adapter().check_body((FIXTURES / f"{stem}.json").read_bytes())


# -- parsing details ------------------------------------------------------------------------------
def body_of(*items: dict[str, Any], field: str = "messaging") -> bytes:
    return orjson.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1, field: list(items)}]})


def item(**fields: Any) -> dict[str, Any]:
    return {"sender": {"id": LAN}, "recipient": {"id": PAGE}, "timestamp": 1732346400000} | fields


def test_unknown_items_and_contents_are_kept_as_unsupported() -> None:
    referral = item(referral={"ref": "ad-42", "source": "ADS", "type": "OPEN_THREAD"})
    handover = item(pass_thread_control={"new_owner_app_id": "123", "metadata": "x"})
    empty = item(message={"mid": "m_empty"})
    events = parse_body(body_of(referral, handover, empty))
    assert [(e.kind, e.platform_type, e.dedupe_key) for e in events] == [
        (EventKind.UNSUPPORTED, "referral", f"u:{LAN}:1732346400000:referral"),
        (
            EventKind.UNSUPPORTED,
            "pass_thread_control",
            f"u:{LAN}:1732346400000:pass_thread_control",
        ),
        (EventKind.UNSUPPORTED, "message", "m:m_empty"),
    ]


def test_legacy_location_other_media_and_reaction_names() -> None:
    location = {
        "type": "location",
        "title": "Pinned Location",
        "url": "https://l.facebook.com/x",
        "payload": {"coordinates": {"lat": 10.7769, "long": 106.7009}},
    }
    audio = {"type": "audio", "payload": {"url": "https://cdn.example/a.mp4"}}
    reel = {"type": "ig_reel", "payload": {"url": "https://cdn.example/r.mp4"}}
    bare = {"type": "fallback"}  # "a fallback with no payload might be sent"
    (ev,) = parse_body(
        body_of(item(message={"mid": "m_1", "attachments": [location, audio, reel, bare]}))
    )
    assert ev.attachments == [
        Attachment(
            "location",
            url="https://l.facebook.com/x",
            meta={"latitude": 10.7769, "longitude": 106.7009, "title": "Pinned Location"},
        ),
        Attachment("audio", url="https://cdn.example/a.mp4"),
        Attachment("video", url="https://cdn.example/r.mp4", meta={"type": "ig_reel"}),
        Attachment("link"),
    ]
    no_emoji = item(reaction={"reaction": "like", "action": "react", "mid": "m_1"})
    unreact = item(reaction={"reaction": "like", "emoji": "👍", "action": "unreact", "mid": "m_1"})
    assert [e.reaction for e in parse_body(body_of(no_emoji, unreact))] == ["like", None]


def test_standby_and_dashboard_change_items_parse_like_messaging() -> None:
    msg = item(message={"mid": "m_sb", "text": "xin chào"})
    (standby,) = parse_body(body_of(msg, field="standby"))
    change = {"field": "messages", "value": msg}
    (changed,) = parse_body(body_of(change, field="changes"))
    assert standby.dedupe_key == changed.dedupe_key == "m:m_sb"
    assert changed.text == "xin chào"


def test_checkbox_optin_without_sender_is_kept_under_its_user_ref() -> None:
    optin = {
        "recipient": {"id": PAGE},
        "timestamp": 1732346400000,
        "optin": {"ref": "cart", "user_ref": "UREF-1"},
    }
    (ev,) = parse_body(body_of(optin))
    assert (ev.kind, ev.external_user_id) == (EventKind.UNSUPPORTED, "user_ref:UREF-1")


@pytest.mark.parametrize(
    "body",
    [
        body_of({"recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": "m", "text": "x"}}),
        body_of({"sender": {"id": LAN}, "timestamp": 1, "message": {"mid": "m", "text": "x"}}),
        body_of({"sender": {"id": LAN}, "recipient": {"id": PAGE}, "message": {"mid": "m"}}),
        body_of(item(timestamp="yesterday", message={"mid": "m", "text": "x"})),
        body_of(item(message={"text": "no mid"})),
        body_of(item(delivery={"mids": ["m"]})),  # no watermark
        body_of(item(reaction={"action": "react"})),  # no mid
        body_of(item(message="hello")),
        body_of("not an item"),
        orjson.dumps({"object": "page", "entry": ["x"]}),
        orjson.dumps({"object": "page", "entry": [{"id": PAGE, "messaging": {"a": 1}}]}),
        body_of({"field": "feed"}, field="changes"),
    ],
)
def test_malformed_items_reject_the_whole_body(body: bytes) -> None:
    with pytest.raises(PayloadError) as err:
        parse_body(body)
    assert "Messenger" in str(err.value)


def test_a_bad_item_after_good_ones_still_rejects_the_body() -> None:
    good = item(message={"mid": "m_ok", "text": "fine"})
    with pytest.raises(PayloadError, match=r"entry\[0\]\.messaging\[1\]"):
        parse_body(body_of(good, {"recipient": {"id": PAGE}, "timestamp": 1}))


# -- verify, handshake and check_body -------------------------------------------------------------
CORPUS_01 = FIXTURES / "01_text_escaped_unicode_with_sha1_sig.json"
CORPUS_01_SECRET = "e6af24be1d683c8c911949f897eea1f6"  # from its .source.txt
CORPUS_01_SHA1 = "sha1=da611bd448dc12acdf0cd3ab33fdb3adaee26145"


def test_corpus_body_verifies_with_its_sha1_signature_and_fails_when_a_byte_changes() -> None:
    adapter = make_adapter(app_secret=CORPUS_01_SECRET)
    body = CORPUS_01.read_bytes()
    adapter.verify({"x-hub-signature": CORPUS_01_SHA1}, body)
    adapter.verify(Headers({"X-Hub-Signature": CORPUS_01_SHA1}), body)
    for i in (0, len(body) // 2, len(body) - 1):
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        with pytest.raises(SignatureError):
            adapter.verify({"x-hub-signature": CORPUS_01_SHA1}, changed)


def test_sha1_is_not_accepted_when_the_sha256_header_is_there() -> None:
    adapter = make_adapter(app_secret=CORPUS_01_SECRET)
    body = CORPUS_01.read_bytes()
    with pytest.raises(SignatureError):
        adapter.verify({"X-Hub-Signature": CORPUS_01_SHA1, SIGNATURE_HEADER: "sha256=00"}, body)
    adapter.verify({"X-Hub-Signature": "sha1=00"} | sign(body, CORPUS_01_SECRET), body)


def test_sha256_signature_in_any_header_case() -> None:
    adapter, body = make_adapter(), (FIXTURES / "27_text_vietnamese_escaped.json").read_bytes()
    adapter.verify(sign(body), body)
    adapter.verify({SIGNATURE_HEADER.lower(): sign(body)[SIGNATURE_HEADER]}, body)
    adapter.verify(Headers(sign(body)), body)
    adapter.verify(
        {SIGNATURE_HEADER: sign(body)[SIGNATURE_HEADER].upper().replace("SHA", "sha")}, body
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: "sha256=deadbeef"},
        {SIGNATURE_HEADER: sign(b"other body")[SIGNATURE_HEADER]},
        sign(b"{}", secret="f" * 32),  # another app's secret
        {SIGNATURE_HEADER: sign(b"{}")[SIGNATURE_HEADER].removeprefix("sha256=")},
        {
            "X-Hub-Signature": "sha1="
            + hmac.new(APP_SECRET.encode(), b"{}", "sha1").hexdigest()[:-1]
        },
    ],
)
def test_verify_rejects_missing_or_wrong_signatures(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as err:
        make_adapter().verify(headers, b"{}")
    assert APP_SECRET not in str(err.value) and PROOF not in str(err.value)


def test_handshake_echoes_the_challenge_for_the_right_token() -> None:
    args = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert make_adapter().handshake(args) == "1158201444"
    assert make_adapter().handshake(MultiDict(args)) == "1158201444"


def test_handshake_refuses_a_wrong_token_with_403() -> None:
    for token in ("wrong", VERIFY_TOKEN.upper(), "", None):
        args = {"hub.mode": "subscribe", "hub.challenge": "42"}
        if token is not None:
            args["hub.verify_token"] = token
        with pytest.raises(Forbidden) as err:
            make_adapter().handshake(args)
        assert err.value.http_status == 403 and VERIFY_TOKEN not in str(err.value)


@pytest.mark.parametrize(
    "args",
    [
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
    ],
)
def test_handshake_rejects_other_modes_and_missing_challenge(args: dict[str, str]) -> None:
    with pytest.raises(PayloadError):
        make_adapter().handshake(args)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{nope",
        b"[]",
        b'"page"',
        b"{}",
        b'{"object": "instagram", "entry": []}',
        b'{"object": "page"}',
        b'{"object": "page", "entry": {}}',
    ],
)
def test_check_body_rejects_what_is_not_a_page_webhook(body: bytes) -> None:
    with pytest.raises(PayloadError):
        make_adapter().check_body(body)


def test_check_body_accepts_page_webhooks() -> None:
    make_adapter().check_body(CORPUS_01.read_bytes())
    make_adapter().check_body(b'{"object": "page", "entry": []}')
    assert parse_body(b'{"object": "page", "entry": []}') == []


# -- settings ------------------------------------------------------------------------------------
def settings(**overrides: Any) -> Any:
    base = {
        "page_id": PAGE,
        "page_access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    return FacebookAdapter.Settings(**(base | overrides))


def test_settings_accept_an_unquoted_page_id_and_normalise_graph_base() -> None:
    s = settings(page_id=104857600123456, graph_base="http://127.0.0.1:9000/v25.0/")
    assert s.page_id == PAGE and s.graph_base == "http://127.0.0.1:9000/v25.0"
    assert settings().graph_base == "https://graph.facebook.com/v25.0"
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in repr(s)


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("page_id", "my-shop", "numeric id"),
        ("page_id", "", "numeric id"),
        ("page_id", True, "numeric id"),
        ("page_access_token", "short", "EAA"),
        ("page_access_token", f"Bearer {TOKEN}", "EAA"),
        ("page_access_token", f'"{TOKEN}"', "EAA"),
        ("app_secret", "1234567890123456", "32 hexadecimal"),  # an app id, not the secret
        ("app_secret", "g" * 32, "32 hexadecimal"),
        ("verify_token", "has space", "1-256"),
        ("verify_token", "", "1-256"),
        ("graph_base", "graph.facebook.com/v25.0", "http(s) URL"),
    ],
)
def test_settings_explain_mistakes_without_echoing_secrets(key: str, value: Any, hint: str) -> None:
    with pytest.raises(ValidationError) as err:
        settings(**{key: value})
    assert hint in str(err.value)
    if key in ("page_access_token", "app_secret", "verify_token") and len(value) > 8:
        assert value not in str(err.value)


def test_settings_forbid_unknown_keys_and_require_the_secrets() -> None:
    with pytest.raises(ValidationError, match="webhook_url"):
        settings(webhook_url="https://x")
    with pytest.raises(ValidationError, match="app_secret"):
        FacebookAdapter.Settings(page_id=PAGE, page_access_token=TOKEN, verify_token=VERIFY_TOKEN)


def test_registry_resolves_the_builtin_name() -> None:
    assert resolve_adapter("facebook") is FacebookAdapter


def test_facts() -> None:
    f = make_adapter().facts()
    assert (f.reply_window_s, f.human_agent_window_s) == (86400, 7 * 86400)
    assert [(r.scope, r.count, r.per_seconds) for r in f.rate_limits] == [("channel", 250, 1.0)]
    assert f.verifiable_identifiers == frozenset() and f.redelivery_horizon_s == 36 * 3600


# -- simulate --------------------------------------------------------------------------------------
def test_simulate_is_signed_and_parses_to_a_message() -> None:
    adapter = make_adapter()
    headers, body = adapter.simulate("Xin chào, tôi cần hỗ trợ 🙏", LAN, "Lan")
    assert body.isascii()  # escaped like Meta's own bodies
    adapter.verify(headers, body)
    adapter.check_body(body)
    (ev,) = adapter.parse(RawEvent("fb-test", body, headers, RECEIVED_MS))
    assert (ev.kind, ev.text, ev.external_user_id, ev.address, ev.direction) == (
        M,
        "Xin chào, tôi cần hỗ trợ 🙏",
        LAN,
        LAN,
        Direction.IN,
    )
    _, again = adapter.simulate("again", LAN, "Lan")
    assert parse_body(again)[0].dedupe_key != ev.dedupe_key


# -- send against the fake Graph API -------------------------------------------------------------
@pytest.fixture
def fake() -> FakeGraphAPI:
    profiles = {
        LAN: {
            "first_name": "Lan",
            "last_name": "Nguyễn Thị",
            "profile_pic": "https://platform-lookaside.fbsbx.com/p/lan.jpg",
        },
        MINH: {"first_name": "Minh"},
    }
    with FakeGraphAPI(TOKEN, APP_SECRET, profiles) as api:
        yield api


def out(
    text: str | None = "Chào bạn, mình kiểm tra ngay nhé",
    age_ms: int | None = HOUR_MS,
    author: AuthorKind = AuthorKind.AGENT,
    address: str = LAN,
    **kw: Any,
) -> OutboundMessage:
    last = None if age_ms is None else time.time_ns() // 1_000_000 - age_ms
    return OutboundMessage(
        address=address,
        text=text,
        author_kind=author,
        idempotency_key="msg-1",
        last_inbound_ts_ms=last,
        **kw,
    )


def test_send_inside_24h_is_a_response(fake: FakeGraphAPI) -> None:
    adapter = make_adapter(fake.base_url)
    receipt = adapter.send(out(age_ms=23 * HOUR_MS, author=AuthorKind.BOT))
    assert fake.sent() == [
        {
            "recipient": {"id": LAN},
            "messaging_type": "RESPONSE",
            "message": {"text": "Chào bạn, mình kiểm tra ngay nhé"},
        }
    ]
    (call,) = fake.calls
    assert call.token == TOKEN and call.params == {"appsecret_proof": PROOF}
    assert "access_token" not in call.params  # the token travels in the header only
    assert receipt.external_id == "m_1" and receipt.raw["recipient_id"] == LAN
    assert receipt.sent_ts_ms > 0
    assert adapter.sent_dedupe_keys(out(), receipt) == ["m:m_1"]


def test_an_agent_at_three_days_sends_with_the_human_agent_tag(fake: FakeGraphAPI) -> None:
    make_adapter(fake.base_url).send(out(age_ms=3 * DAY_MS))
    (sent,) = fake.sent()
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize(
    ("author", "age_ms"),
    [
        (AuthorKind.BOT, 3 * DAY_MS),
        (AuthorKind.SYSTEM, 25 * HOUR_MS),
        (AuthorKind.AGENT, 8 * DAY_MS),
        (AuthorKind.BOT, 8 * DAY_MS),
        (AuthorKind.AGENT, None),  # the customer never wrote on this channel
    ],
)
def test_closed_window_is_refused_before_calling_meta(
    fake: FakeGraphAPI, author: AuthorKind, age_ms: int | None
) -> None:
    with pytest.raises(WindowClosed) as err:
        make_adapter(fake.base_url).send(out(author=author, age_ms=age_ms))
    assert (err.value.retryable, err.value.code) == (False, "window_closed")
    assert fake.calls == []


def test_send_text_then_each_attachment_and_split_long_text(fake: FakeGraphAPI) -> None:
    adapter = make_adapter(fake.base_url)
    long_text = ("Dạ vâng ạ. " * 300).strip()  # 3299 characters
    receipt = adapter.send(
        out(
            long_text,
            attachments=[
                Attachment("image", url="https://cdn.example/a.png"),
                Attachment("file", url="https://cdn.example/b.pdf", name="b.pdf"),
                Attachment("voice", url="https://cdn.example/c.ogg"),
                # as stored: a 15-digit id is kept as a string (core.models.lua_exact)
                Attachment("sticker", meta={"sticker_id": str(LIKE_STICKER)}),
            ],
        )
    )
    messages = [s["message"] for s in fake.sent()]
    texts = [m["text"] for m in messages[:2]]
    assert all(len(t) <= 2000 for t in texts) and " ".join(texts) == long_text
    assert messages[2:] == [
        {
            "attachment": {
                "type": "image",
                "payload": {"url": "https://cdn.example/a.png", "is_reusable": True},
            }
        },
        {
            "attachment": {
                "type": "file",
                "payload": {"url": "https://cdn.example/b.pdf", "is_reusable": True},
            }
        },
        {
            "attachment": {
                "type": "audio",
                "payload": {"url": "https://cdn.example/c.ogg", "is_reusable": True},
            }
        },
        {"sticker_id": LIKE_STICKER},
    ]
    assert receipt.external_id == "m_1" and receipt.raw["message_ids"] == [
        f"m_{i}" for i in range(1, 7)
    ]
    assert adapter.sent_dedupe_keys(out(), receipt) == [f"m:m_{i}" for i in range(1, 7)]


def test_send_to_a_plugin_guest_uses_user_ref(fake: FakeGraphAPI) -> None:
    receipt = make_adapter(fake.base_url).send(out(address="user_ref:UREF-1"))
    assert fake.sent()[0]["recipient"] == {"user_ref": "UREF-1"}
    assert receipt.raw["recipient_id"] is None


@pytest.mark.parametrize(
    "message",
    [
        out(None),
        out(""),
        out(None, attachments=[Attachment("file", file_id="tg-file-id")]),
        out(address="<PSID>"),
    ],
)
def test_unsendable_messages_fail_final_without_a_call(
    fake: FakeGraphAPI, message: OutboundMessage
) -> None:
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(message)
    assert (err.value.retryable, err.value.code) == (False, "bad_request") and fake.calls == []


def send_error(fake: FakeGraphAPI, *fail: Any, **kw: Any) -> DeliveryError:
    fake.fail_next("POST", *fail, **kw)
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out())
    for secret in (TOKEN, PROOF, APP_SECRET):
        assert secret not in str(err.value)
    assert fake.base_url not in str(err.value)
    return err.value


def test_expired_token_is_final(fake: FakeGraphAPI) -> None:
    e = send_error(fake, 400, 190, 463, "Error validating access token: Session has expired.")
    assert (e.retryable, e.code) == (False, "unauthorized") and "page_access_token" in str(e)


def test_wrong_token_is_final_and_never_quoted(fake: FakeGraphAPI) -> None:
    other = "EAAanotherTokenTheFakeDoesNotKnow42"
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url, token=other).send(out())
    assert (err.value.retryable, err.value.code) == (False, "unauthorized")
    assert other not in str(err.value) and "Invalid OAuth access token" in str(err.value)
    assert fake.sent() == []


def test_wrong_app_secret_makes_a_bad_proof(fake: FakeGraphAPI) -> None:
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url, app_secret="f" * 32).send(out())
    assert (err.value.retryable, err.value.code) == (False, "bad_request")
    assert "appsecret_proof" in str(err.value)


def test_outside_the_window_by_meta_is_final(fake: FakeGraphAPI) -> None:
    e = send_error(fake, 400, 10, 2018278, "(#10) This message is sent outside of allowed window.")
    assert (e.retryable, e.code) == (False, "window_closed") and "2018278" in str(e)
    e = send_error(fake, 400, 200, 2018065, "(#200) Outside of allowed window")
    assert (e.retryable, e.code) == (False, "window_closed")


def test_unavailable_person_is_blocked(fake: FakeGraphAPI) -> None:
    e = send_error(fake, 400, 551, 1545041, "(#551) This person isn't available right now.")
    assert (e.retryable, e.code) == (False, "blocked") and "fbtrace_id" in str(e)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_rate_limits_are_retryable_after_a_minute(fake: FakeGraphAPI, code: int) -> None:
    e = send_error(fake, 400, code, None, "(#613) Calls to this api have exceeded the rate limit.")
    assert (e.retryable, e.retry_after, e.code) == (True, 60.0, "rate_limited")


def test_rate_limit_hints_from_headers(fake: FakeGraphAPI) -> None:
    e = send_error(
        fake, 400, 4, None, "Application request limit reached", headers={"Retry-After": "7"}
    )
    assert e.retry_after == 7.0
    usage = {PAGE: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}]}
    e = send_error(
        fake,
        400,
        32,
        None,
        "Page request limit reached",
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
    )
    assert e.retry_after == 300.0


@pytest.mark.parametrize(
    ("status", "code"), [(500, 2), (500, 1), (503, 2), (502, 99), (400, 2), (400, 1)]
)
def test_temporary_errors_are_retryable(fake: FakeGraphAPI, status: int, code: int) -> None:
    e = send_error(fake, status, code, None, "An unexpected error has occurred.")
    assert (e.retryable, e.code) == (True, "server_error")


def test_other_client_errors_are_final(fake: FakeGraphAPI) -> None:
    e = send_error(fake, 400, 100, 2018001, "(#100) No matching user found")
    assert (e.retryable, e.code) == (False, "bad_request") and "No matching user" in str(e)


def test_connection_refused_and_dropped_are_retryable(fake: FakeGraphAPI) -> None:
    fake.fail_next("me/messages", 0, 0)
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out())
    assert err.value.retryable and err.value.code == "network"
    api = FakeGraphAPI(TOKEN, APP_SECRET)
    base = api.start()
    api.stop()
    with pytest.raises(DeliveryError) as err:
        make_adapter(base).send(out())
    assert err.value.retryable and err.value.code == "network"
    assert base not in str(err.value) and TOKEN not in str(err.value)
    assert err.value.__suppress_context__  # httpx's message (with the URL) is not chained in


def scripted(status: int, content: bytes) -> FacebookAdapter:
    """An adapter whose Graph API answers every call with this status and body."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    settings = make_adapter().settings
    return FacebookAdapter("fb-test", settings, http=httpx.Client(transport=transport))


def test_odd_answers_map_to_errors() -> None:
    with pytest.raises(DeliveryError) as err:  # a proxy's error page
        scripted(502, b"<html>Bad Gateway</html>").send(out())
    assert (err.value.retryable, err.value.code, str(err.value)) == (
        True,
        "server_error",
        "facebook me/messages: HTTP 502",
    )
    with pytest.raises(DeliveryError) as err:  # 200 without a message id: nothing was sent
        scripted(200, b'{"recipient_id": "1"}').send(out())
    assert (err.value.retryable, err.value.code) == (False, "server_error")
    with pytest.raises(DeliveryError) as err:  # an error object under HTTP 200
        scripted(200, orjson.dumps({"error": {"message": "x", "code": 613}})).send(out())
    assert (err.value.retryable, err.value.code) == (True, "rate_limited")


def test_a_failure_after_a_part_went_out_is_final() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"recipient_id": LAN, "message_id": "m_1"}),
            httpx.Response(500, json={"error": {"message": "Temporary", "code": 2}}),
        ]
    )
    transport = httpx.MockTransport(lambda request: next(answers))
    adapter = FacebookAdapter(
        "fb-test", make_adapter().settings, http=httpx.Client(transport=transport)
    )
    with pytest.raises(DeliveryError) as err:
        adapter.send(out(attachments=[Attachment("image", url="https://cdn.example/a.png")]))
    assert not err.value.retryable and "1 of 2 parts were sent" in str(err.value)


def test_httpx_request_log_hides_the_proof(
    fake: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        make_adapter(fake.base_url).send(out())
        make_adapter(fake.base_url).fetch_profile(LAN)
    assert "me/messages" in caplog.text and "appsecret_proof=<redacted>" in caplog.text
    assert TOKEN not in caplog.text and PROOF not in caplog.text


# -- profiles ------------------------------------------------------------------------------------
def test_fetch_profile(fake: FakeGraphAPI) -> None:
    adapter = make_adapter(fake.base_url)
    assert adapter.fetch_profile(LAN) == {
        "name": "Lan Nguyễn Thị",
        "picture": "https://platform-lookaside.fbsbx.com/p/lan.jpg",
    }
    assert adapter.fetch_profile(MINH) == {"name": "Minh"}
    call = fake.calls[0]
    assert (call.method, call.path, call.params["fields"]) == (
        "GET",
        LAN,
        "first_name,last_name,profile_pic",
    )


def test_fetch_profile_is_none_on_any_error(fake: FakeGraphAPI) -> None:
    adapter = make_adapter(fake.base_url)
    assert adapter.fetch_profile(HOA) is None  # Meta will not say (code 100)
    fake.fail_next("GET", 500, 2)
    assert adapter.fetch_profile(LAN) is None
    calls = len(fake.calls)
    assert adapter.fetch_profile("user_ref:UREF-1") is None
    assert adapter.fetch_profile("../me/accounts") is None
    assert len(fake.calls) == calls  # never sent
    fake.stop()
    assert adapter.fetch_profile(LAN) is None


def test_fake_accepts_token_in_query_and_unversioned_paths(fake: FakeGraphAPI) -> None:
    root = fake.base_url.removesuffix("/v25.0")
    body = {"recipient": {"id": LAN}, "message": {"text": "hi"}, "messaging_type": "RESPONSE"}
    r = httpx.post(f"{root}/me/messages", params={"access_token": TOKEN}, json=body)
    assert r.json() == {"recipient_id": LAN, "message_id": "m_1"}
    r = httpx.post(f"{root}/me/messages", params={"access_token": "nope"}, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == 190
