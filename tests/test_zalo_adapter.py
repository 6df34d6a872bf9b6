"""The Zalo OA adapter on its own: fixtures in, events out; sends against a fake Zalo."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import ValidationError

from tests.fakes.zalo_api import (
    ACCESS_TOKEN,
    ANON_PATH,
    APP_ID,
    APP_SECRET,
    PROFILE_PATH,
    REFRESH_TOKEN,
    TOKEN_PATH,
    FakeZaloAPI,
)
from tongdai.adapters.base import MemoryTokenStore, OutboundMessage
from tongdai.adapters.zalo import SIGNATURE_HEADER, ZaloAdapter, matching_variants
from tongdai.core.errors import DeliveryError, PayloadError, SignatureError, WindowClosed
from tongdai.core.models import Attachment, AuthorKind, Direction, EventKind, InboundEvent, RawEvent
from tongdai.core.registry import resolve_adapter

FIXTURES = Path(__file__).parent / "fixtures" / "zalo"
CORPUS = Path("/work/shared/corpus/zalo")
OA = "388613280878808645"
OA_KEY = "oa-Secret_key-7781"
RECEIVED_MS = 1_700_000_000_123
SECRETS = (OA_KEY, APP_SECRET, ACCESS_TOKEN, REFRESH_TOKEN)


def settings(**kw: object) -> ZaloAdapter.Settings:
    base = {
        "oa_id": OA,
        "app_id": APP_ID,
        "oa_secret_key": OA_KEY,
        "app_secret": APP_SECRET,
        "access_token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
    }
    return ZaloAdapter.Settings(**(base | kw))


def make_adapter(
    base: str | None = None, store: MemoryTokenStore | None = None, **kw: object
) -> ZaloAdapter:
    if base is not None:
        kw |= {"api_base": base, "oauth_base": base}
    adapter = ZaloAdapter("zalo-test", settings(**kw), http=httpx.Client(timeout=5.0))
    if store is not None:
        adapter.token_store = store
    return adapter


def parse_body(body: bytes, adapter: ZaloAdapter | None = None) -> list[InboundEvent]:
    return (adapter or make_adapter()).parse(RawEvent("zalo-test", body, {}, RECEIVED_MS))


def parse_fixture(name: str) -> InboundEvent:
    events = parse_body((FIXTURES / f"{name}.json").read_bytes())
    assert len(events) == 1
    return events[0]


# -- every fixture --------------------------------------------------------------------------
USER, TRONG = "246845883529197922", "8958041078911298472"
IN, OUT = Direction.IN, Direction.OUT
EXPECTED: dict[str, dict] = {
    "01_user_send_text_docsample": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:96d3cdf3af150460909",
        "external_user_id": USER,
        "address": USER,
        "external_message_id": "96d3cdf3af150460909",
        "direction": IN,
        "text": "message",
        # the docs sample's "154390853474" is 12 digits (1974): the received time stands in
        "platform_ts_ms": RECEIVED_MS,
        "profile": {},
        "platform_type": "user_send_text",
    },
    "02_follow_docsample": {
        "kind": EventKind.FOLLOW,
        "dedupe_key": "f:24684588352919792:154397978274:follow",
        "external_user_id": "24684588352919792",
        "address": "24684588352919792",
        "platform_ts_ms": RECEIVED_MS,
    },
    "03_follow_real_capture": {
        "kind": EventKind.FOLLOW,
        "dedupe_key": f"f:{TRONG}:1724921862647:follow",
        "external_user_id": TRONG,
        "platform_ts_ms": 1724921862647,
        "platform_type": "follow",
    },
    "05_user_send_location_real": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:b8de7d84fa1b3043690c",
        "external_user_id": "8309393969855402319",
        "address": "8309393969855402319",
        "text": "Cơm Coffee New Sky",
        "platform_ts_ms": 1751100041636,
        "direction": IN,
    },
    "06_user_submit_info_docsample": {
        "kind": EventKind.CONTACT_SHARED,
        "dedupe_key": "i:246845883529697922:1540368141908",
        "external_user_id": "246845883529697922",
        "address": "246845883529697922",
        "platform_ts_ms": 1540368141908,
    },
    "07_add_user_to_tag_docsample": {
        "kind": EventKind.UNSUPPORTED,
        "platform_type": "add_user_to_tag",
        "external_user_id": "246845883296197922",
        "platform_ts_ms": RECEIVED_MS,
    },
    "08_zns_user_received_message_docsample": {
        "kind": EventKind.DELIVERY,
        "dedupe_key": "d:84123456789:1602560967477",
        "external_user_id": "84123456789",  # ZNS: the recipient is a phone number
        "target_ids": ["m:15a0cc0bbb13bd4ce403"],
        "platform_ts_ms": 1602960467432,  # message.delivery_time, not timestamp
    },
    "09_user_seen_message_fixture": {
        "kind": EventKind.READ,
        "external_user_id": "USER_ID",
        "address": "USER_ID",
        "target_ids": ["m:m1", "m:m2"],  # "m2" twice in the payload
        "platform_ts_ms": RECEIVED_MS,
    },
    "10_user_send_image_docs": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:7a1c0e9b3f5d2468ac10",
        "external_user_id": USER,
        "text": "Ảnh sản phẩm bị lỗi",
        "platform_ts_ms": 1732345600123,
    },
    "11_user_send_sticker_docs": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:5b7d9f1a3c5e7092b4d6",
        "text": None,
    },
    "12_user_send_link_docs": {
        "kind": EventKind.MESSAGE,
        "text": "https://example.vn/san-pham/ao-thun-trang",
    },
    "13_user_send_file_docs": {"kind": EventKind.MESSAGE, "dedupe_key": "m:d4f6a8c0e2b4d6f8a0c2"},
    "14_anonymous_send_text_docs": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:1e3c5a7f9b1d3f5a7c9e",
        "external_user_id": "6817391530946127346",
        # replies need the anonymous id and the conversation id (message.conversation_id)
        "address": "anon:6817391530946127346:c0a8e6f4d2b0a8c6e4f2",
        "text": "Cho mình hỏi giờ mở cửa",
        "direction": IN,
        "platform_type": "anonymous_send_text",
    },
    "15_oa_send_text_docs": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:9e7c5a3f1d9b7f5c3a1e",
        "external_user_id": USER,  # the customer is the recipient of the OA's message
        "address": USER,
        "external_message_id": "9e7c5a3f1d9b7f5c3a1e",
        "direction": OUT,
        "text": "Dạ shop chào bạn, bạn cần tư vấn sản phẩm nào ạ?",
        "platform_ts_ms": 1732346100678,
    },
    "16_unfollow_docs": {
        "kind": EventKind.UNFOLLOW,
        "dedupe_key": f"f:{TRONG}:1725008262647:unfollow",
        "external_user_id": TRONG,
        "address": TRONG,
    },
    "17_user_received_message_docs": {
        "kind": EventKind.DELIVERY,
        "dedupe_key": f"d:{USER}:1732346160901",
        "external_user_id": USER,
        "target_ids": ["m:9e7c5a3f1d9b7f5c3a1e"],
        "platform_ts_ms": 1732346160901,
    },
    "18_user_send_text_vietnamese": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:3f5b7d9e1a3c5e7f9b1d",
        "external_user_id": USER,
        "address": USER,
        "text": "Shop ơi cho mình hỏi giá",
        "platform_ts_ms": 1732346222333,
    },
}
ATTACHMENTS: dict[str, Attachment] = {
    "05_user_send_location_real": Attachment(
        "location", meta={"latitude": 10.7923119, "longitude": 106.7820651}
    ),
    "06_user_submit_info_docsample": Attachment(
        "contact",
        meta={
            "name": "Name Example",
            "phone": "84912345678",
            "address": "Đường số 13, KCX Tân Thuận Đông",
            "ward": "Phường Tân Thuận",
            "city": "Thành phố Hồ Chí Minh",
            "dob": "30/10/1999",
            "gender": "Nam",
        },
    ),
    "10_user_send_image_docs": Attachment(
        "image",
        url="https://f1.photo.talk.zdn.vn/7a1c0e9b3f5d2468ac10.jpg",
        meta={"thumbnail": "https://f1.photo.talk.zdn.vn/thumb/7a1c0e9b3f5d2468ac10.jpg"},
    ),
    "11_user_send_sticker_docs": Attachment(
        "sticker",
        url="https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=46991&size=130",
        file_id="2fba3a0c8fc966973fd8",
    ),
    "12_user_send_link_docs": Attachment(
        "link",
        url="https://example.vn/san-pham/ao-thun-trang",
        meta={
            "thumbnail": "https://example.vn/img/ao-thun-trang.jpg",
            "description": "Áo thun trắng cotton 100%",
        },
    ),
    "13_user_send_file_docs": Attachment(
        "file",
        url="https://f20-zpc.zdn.vn/synthetic/hoa-don-thang-11.pdf",
        name="hoa-don-thang-11.pdf",
        size=254876,
        meta={"extension": "pdf", "checksum": "8f14e45fceea167a5a36dedd4bea2543"},
    ),
}
NOT_EVENTS = {"04_user_detail_response_real"}  # an API answer, used by fetch_profile below
# The OA each event belongs to: recipient of user events, sender of oa_send_*, the top-level
# oa_id of follow/unfollow (and of unknown events), the side that is not the customer in receipts.
ACCOUNTS: dict[str, str | None] = {
    "01_user_send_text_docsample": OA,
    "02_follow_docsample": "388613280879808645",
    "03_follow_real_capture": "4024926008133882615",
    "05_user_send_location_real": "1423847451268726170",
    "06_user_submit_info_docsample": "388613280879880645",
    "07_add_user_to_tag_docsample": "388613280879880645",
    "08_zns_user_received_message_docsample": "2893352839501541173",
    "09_user_seen_message_fixture": "OA_ID",
    "10_user_send_image_docs": OA,
    "11_user_send_sticker_docs": OA,
    "12_user_send_link_docs": OA,
    "13_user_send_file_docs": OA,
    "14_anonymous_send_text_docs": OA,
    "15_oa_send_text_docs": OA,
    "16_unfollow_docs": "4024926008133882615",
    "17_user_received_message_docs": OA,
    "18_user_send_text_vietnamese": OA,
}


def test_every_fixture_has_an_expectation_and_a_source() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert names == set(EXPECTED) | NOT_EVENTS
    for n in names:
        assert (FIXTURES / f"{n}.source.txt").exists() or (
            FIXTURES / f"{n}.json.source.txt"
        ).exists()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not mounted here")
def test_corpus_files_are_copied_unchanged() -> None:
    for src in CORPUS.iterdir():
        assert (FIXTURES / src.name).read_bytes() == src.read_bytes(), src.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_event(name: str) -> None:
    event = parse_fixture(name)
    for attr, want in EXPECTED[name].items():
        assert getattr(event, attr) == want, attr
    if name in ATTACHMENTS:
        assert event.attachments == [ATTACHMENTS[name]]
    else:
        assert event.attachments == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_names_its_oa(name: str) -> None:
    assert set(ACCOUNTS) == set(EXPECTED)
    assert parse_fixture(name).account_id == ACCOUNTS[name]


def test_submit_info_vouches_for_the_phone_as_given() -> None:
    ev = parse_fixture("06_user_submit_info_docsample")
    assert ev.identifier is not None
    assert (ev.identifier.kind, ev.identifier.value, ev.identifier.verified) == (
        "phone",
        "84912345678",
        True,
    )
    assert ev.identifier.source == "zalo_user_submit_info"
    body = orjson.loads((FIXTURES / "06_user_submit_info_docsample.json").read_bytes())
    del body["info"]["phone"]
    (ev,) = parse_body(orjson.dumps(body))
    assert ev.kind is EventKind.CONTACT_SHARED and ev.identifier is None


def test_no_other_event_claims_an_identifier() -> None:
    for name in EXPECTED:
        if name != "06_user_submit_info_docsample":
            assert parse_fixture(name).identifier is None, name


def test_our_echo_and_its_receipt_meet_under_one_key() -> None:
    echo = parse_fixture("15_oa_send_text_docs")
    receipt = parse_fixture("17_user_received_message_docs")
    assert receipt.target_ids == [echo.dedupe_key]
    assert echo.external_user_id == receipt.external_user_id


def test_dedupe_keys_are_stable_across_redeliveries() -> None:
    for name in EXPECTED:
        body = (FIXTURES / f"{name}.json").read_bytes()
        later = make_adapter().parse(RawEvent("zalo-test", body, {}, RECEIVED_MS + 3_600_000))
        assert later[0].dedupe_key == parse_fixture(name).dedupe_key, name


def _event(name: str, message: dict | None = None, **top: object) -> bytes:
    body: dict = {
        "app_id": APP_ID,
        "sender": {"id": USER},
        "recipient": {"id": OA},
        "event_name": name,
        "timestamp": "1732346222333",
    } | top
    if message is not None:
        body["message"] = message
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("name", "att", "kind"),
    [
        (
            "user_send_audio",
            {"type": "audio", "payload": {"url": "https://a.zdn.vn/v.amr"}},
            "audio",
        ),
        (
            "user_send_video",
            {
                "type": "video",
                "payload": {"url": "https://a.zdn.vn/v.mp4", "thumbnail": "https://a.zdn.vn/t.jpg"},
            },
            "video",
        ),
        (
            "user_send_gif",
            {"type": "gif", "payload": {"url": "https://a.zdn.vn/g.gif"}},
            "animation",
        ),
    ],
)
def test_media_kinds(name: str, att: dict, kind: str) -> None:
    (ev,) = parse_body(_event(name, {"msg_id": "x1", "attachments": [att]}))
    assert ev.kind is EventKind.MESSAGE and [a.kind for a in ev.attachments] == [kind]
    assert ev.attachments[0].url == att["payload"]["url"]


def test_business_card_is_a_contact_with_its_phone() -> None:
    card = {
        "type": "link",
        "payload": {
            "thumbnail": "https://a.zdn.vn/avatar.jpg",
            "url": "https://zalo.me/0901234567",
            "description": '{"phone":"0901234567","qrCodeUrl":"https://qr.zdn.vn/abc"}',
        },
    }
    (ev,) = parse_body(
        _event(
            "user_send_business_card",
            {"msg_id": "bc1", "text": "Nguyễn Văn A", "attachments": [card]},
        )
    )
    assert ev.kind is EventKind.MESSAGE and ev.identifier is None  # someone's card, not theirs
    assert ev.attachments == [
        Attachment(
            "contact",
            url="https://zalo.me/0901234567",
            meta={
                "name": "Nguyễn Văn A",
                "phone": "0901234567",
                "qr_code_url": "https://qr.zdn.vn/abc",
                "thumbnail": "https://a.zdn.vn/avatar.jpg",
            },
        )
    ]


def test_quote_reply_and_oa_send_image() -> None:
    (ev,) = parse_body(
        _event("user_send_text", {"msg_id": "q2", "text": "ok", "quote_msg_id": "q1"})
    )
    assert ev.reply_to == "m:q1"
    img = {"type": "image", "payload": {"url": "https://a.zdn.vn/p.jpg"}}
    (ev,) = parse_body(
        _event(
            "oa_send_image",
            {"msg_id": "o1", "attachments": [img]},
            sender={"id": OA},
            recipient={"id": USER},
        )
    )
    assert (ev.direction, ev.external_user_id, ev.dedupe_key) == (OUT, USER, "m:o1")


def test_receipts_take_msg_ids_or_msg_id_and_find_the_customer() -> None:
    (ev,) = parse_body(
        _event(
            "user_received_message",
            {"msg_ids": ["a", "b", "a"]},
            sender={"id": OA},
            recipient={"id": USER},
        )
    )
    assert ev.target_ids == ["m:a", "m:b"] and ev.external_user_id == USER
    # some third-party captures show the shape flipped: the side that is not our OA wins
    (ev,) = parse_body(
        _event("user_seen_message", {"msg_ids": ["c"]}, sender={"id": USER}, recipient={"id": OA})
    )
    assert (ev.kind, ev.external_user_id, ev.dedupe_key) == (
        EventKind.READ,
        USER,
        f"s:{USER}:1732346222333",
    )


OTHER_OA = "1111222233334444555"
_TEXT = {"msg_id": "a1", "text": "hi"}
_SEEN = {"msg_ids": ["c"]}


@pytest.mark.parametrize(
    ("body", "account"),
    [
        (_event("user_send_text", _TEXT, recipient={"id": OTHER_OA}), OTHER_OA),
        (_event("anonymous_send_text", _TEXT, recipient={"id": OTHER_OA}), OTHER_OA),
        (_event("oa_send_text", _TEXT, sender={"id": OTHER_OA}, recipient={"id": USER}), OTHER_OA),
        (_event("user_submit_info", None, info={}, recipient={"id": OTHER_OA}), OTHER_OA),
        # receipts: whichever side is not the customer, in either shape
        (_event("user_seen_message", _SEEN, sender={"id": OA}, recipient={"id": USER}), OA),
        (_event("user_seen_message", _SEEN, sender={"id": USER}, recipient={"id": OA}), OA),
        (_event("unfollow", None, sender=None, follower={"id": USER}, oa_id=OTHER_OA), OTHER_OA),
        # unknown events: only a top-level OA id says whose they are
        (orjson.dumps({"event_name": "change_oa_daily_quota", "oaId": OTHER_OA}), OTHER_OA),
        # no identifiable OA: None (the receiving channel keeps it)
        (_event("user_send_text", _TEXT, recipient=None), None),
        (_event("oa_send_text", _TEXT, sender={"id": ""}, recipient={"id": USER}), None),
        (_event("follow", None, sender=None, recipient=None, follower={"id": USER}), None),
        (_event("user_received_message", _TEXT, sender=None, recipient={"id": USER}), None),
        (_event("user_reacted_message", {"msg_id": "r1", "react_icon": "/-heart"}), None),
    ],
)
def test_account_id_is_the_oa_side_of_each_event_kind(body: bytes, account: str | None) -> None:
    (ev,) = parse_body(body)
    assert ev.account_id == account


def test_the_adapter_account_is_its_oa() -> None:
    assert make_adapter().account_id == OA
    assert make_adapter(oa_id=OTHER_OA).account_id == OTHER_OA


def test_anonymous_messages_are_addressed_by_user_and_conversation() -> None:
    img = {"type": "image", "payload": {"url": "https://a.zdn.vn/p.jpg"}}
    msg = {"msg_id": "an1", "conversation_id": "conv-9", "attachments": [img]}
    (ev,) = parse_body(_event("anonymous_send_image", msg, sender={"id": "anon-7"}))
    assert (ev.external_user_id, ev.address, ev.direction) == ("anon-7", "anon:anon-7:conv-9", IN)
    assert [a.kind for a in ev.attachments] == ["image"]
    # without a conversation_id the message is kept; replies are refused (see the send tests)
    (ev,) = parse_body(_event("anonymous_send_text", {"msg_id": "an2", "text": "?"}))
    assert (ev.external_user_id, ev.address) == (USER, f"anon:{USER}:")
    # a logged-in user's address stays the bare user id
    (ev,) = parse_body(
        _event("user_send_text", {"msg_id": "u1", "text": "x", "conversation_id": "c"})
    )
    assert ev.address == USER


def test_unknown_events_are_kept_as_unsupported() -> None:
    body = _event("user_reacted_message", {"msg_id": "r1", "react_icon": "/-heart"})
    (ev,) = parse_body(body)
    assert (ev.kind, ev.platform_type, ev.external_user_id) == (
        EventKind.UNSUPPORTED,
        "user_reacted_message",
        USER,
    )
    digest = hashlib.blake2b(body, digest_size=8).hexdigest()
    assert ev.dedupe_key == f"u:user_reacted_message:1732346222333:{digest}"
    # group chats and call events share the message prefixes but are not 1:1 messages
    for name in ("user_send_group_text", "oa_send_group_text", "oa_send_consent"):
        (ev,) = parse_body(_event(name, {"msg_id": "g1", "text": "hi"}))
        assert ev.kind is EventKind.UNSUPPORTED and ev.platform_type == name
    (ev,) = parse_body(orjson.dumps({"event_name": "change_oa_daily_quota", "oaId": OA}))
    assert ev.external_user_id == "unknown" and ev.kind is EventKind.UNSUPPORTED


def test_timestamps_in_seconds_are_scaled() -> None:
    (ev,) = parse_body(
        _event("user_send_text", {"msg_id": "t1", "text": "x"}, timestamp="1732346222")
    )
    assert ev.platform_ts_ms == 1732346222000


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"user_send_text"',
        b'{"timestamp": "1"}',  # no event_name
        b'{"event_name": ""}',
        _event("user_send_text", {"text": "no msg_id"}),
        _event("user_send_text", None),
        _event("user_send_text", {"msg_id": "m", "text": "x"}, sender={}),
        _event("user_send_text", {"msg_id": "m", "text": "x"}, sender="246845883529197922"),
        _event("user_send_image", {"msg_id": "m", "attachments": "nope"}),
        _event("oa_send_text", {"msg_id": "m", "text": "x"}, recipient=None),
        _event("user_seen_message", {"msg_ids": "m1"}),
        _event("user_seen_message", {"msg_ids": []}),
        _event("user_received_message", {}),
        _event("follow", None, sender=None),
        _event("user_submit_info", None),
    ],
)
def test_malformed_events_raise_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_body(body)


# -- verify and check_body ----------------------------------------------------------------------
def mac_of(body: bytes, ident: str = APP_ID, key: str = OA_KEY, ts: str | None = None) -> str:
    ts = ts if ts is not None else orjson.loads(body)["timestamp"]
    return hashlib.sha256((ident + body.decode() + ts + key).encode()).hexdigest()


DOC_BODY = (FIXTURES / "01_user_send_text_docsample.json").read_bytes()


def test_verify_accepts_the_documented_signature() -> None:
    adapter = make_adapter()
    mac = mac_of(DOC_BODY)
    adapter.verify({SIGNATURE_HEADER: f"mac={mac}"}, DOC_BODY)
    adapter.verify({SIGNATURE_HEADER.lower(): f"mac={mac.upper()}"}, DOC_BODY)
    adapter.verify({"X-ZEVENT-SIGNATURE": f" mac = {mac} "}, DOC_BODY)
    from werkzeug.datastructures import EnvironHeaders

    environ = {"HTTP_X_ZEVENT_SIGNATURE": f"mac={mac}", "CONTENT_TYPE": "application/json"}
    adapter.verify(EnvironHeaders(environ), DOC_BODY)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "mac=",
        "mac=zz" + "0" * 62,
        "mac=" + "0" * 63,
        "sha256=" + "0" * 64,
        "mac=" + "0" * 64,
        "mac=" + mac_of(DOC_BODY)[:-1] + "0",
        "mac=" + mac_of(DOC_BODY, key="wrong"),
        "mac=" + mac_of(DOC_BODY, ts="154390853475"),
    ],
)
def test_verify_rejects_missing_bad_or_unparseable_signatures(header: str | None) -> None:
    headers = {} if header is None else {SIGNATURE_HEADER: header}
    with pytest.raises(SignatureError) as err:
        make_adapter().verify(headers, DOC_BODY)
    assert all(s not in str(err.value) for s in SECRETS)


def test_verify_rejects_a_tampered_body_and_a_body_without_timestamp() -> None:
    adapter = make_adapter()
    mac = mac_of(DOC_BODY)
    with pytest.raises(SignatureError):
        adapter.verify({SIGNATURE_HEADER: f"mac={mac}"}, DOC_BODY.replace(b"message", b"massage"))
    body = orjson.dumps({"event_name": "user_send_text"})
    with pytest.raises(SignatureError, match="no timestamp"):
        adapter.verify({SIGNATURE_HEADER: f"mac={mac_of(body, ts='')}"}, body)


@pytest.mark.parametrize(
    ("sid", "skey", "ident", "key"),
    [
        ("app_id", "app_secret", APP_ID, APP_SECRET),
        ("oa_id", "oa_secret_key", OA, OA_KEY),
        ("oa_id", "app_secret", OA, APP_SECRET),
    ],
)
def test_alternative_signature_settings_both_ways(
    sid: str, skey: str, ident: str, key: str
) -> None:
    alt = make_adapter(signature_id=sid, signature_key=skey)
    good = {SIGNATURE_HEADER: f"mac={mac_of(DOC_BODY, ident, key)}"}
    documented = {SIGNATURE_HEADER: f"mac={mac_of(DOC_BODY)}"}
    alt.verify(good, DOC_BODY)
    with pytest.raises(SignatureError):
        alt.verify(documented, DOC_BODY)  # the documented form no longer passes
    with pytest.raises(SignatureError) as err:
        make_adapter().verify(good, DOC_BODY)  # nor the variant under the default settings
    # ...but the error names the variant that would, so operators can fix the settings
    assert f"signature_id: {sid}, signature_key: {skey}" in str(err.value)
    assert all(s not in str(err.value) for s in SECRETS)
    assert matching_variants(settings(), good, DOC_BODY) == [(sid, skey)]


def test_verify_hashes_the_raw_bytes_not_reserialised_json() -> None:
    body = (FIXTURES / "06_user_submit_info_docsample.json").read_bytes()  # odd whitespace
    mac = mac_of(body)
    make_adapter().verify({SIGNATURE_HEADER: f"mac={mac}"}, body)
    with pytest.raises(SignatureError):
        make_adapter().verify({SIGNATURE_HEADER: f"mac={mac}"}, orjson.dumps(orjson.loads(body)))


@pytest.mark.parametrize("body", [b"", b"{nope", b"[]", b'"text"', b"42", b'{"timestamp": "1"}'])
def test_check_body_rejects_non_events(body: bytes) -> None:
    with pytest.raises(PayloadError):
        make_adapter().check_body(body)


def test_check_body_accepts_an_event() -> None:
    make_adapter().check_body(DOC_BODY)


# -- settings -----------------------------------------------------------------------------------
def test_settings_defaults_and_normalisation() -> None:
    s = settings(
        api_base="http://127.0.0.1:9/",
        oauth_base="https://oauth.zaloapp.com/",
        app_id=360846524940903967,
    )  # YAML reads unquoted ids as ints
    assert (s.app_id, s.api_base, s.oauth_base) == (
        "360846524940903967",
        "http://127.0.0.1:9",
        "https://oauth.zaloapp.com",
    )
    assert (s.reply_window_hours, s.signature_key, s.signature_id) == (
        48,
        "oa_secret_key",
        "app_id",
    )
    assert all(secret not in repr(s) for secret in SECRETS)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("oa_id", "OA-123", "numeric id"),
        ("app_id", "12ab", "numeric id"),
        ("app_id", "", "numeric id"),
        ("app_secret", "", "non-empty"),
        ("access_token", "has space", "non-empty and without spaces"),
        ("refresh_token", "", "non-empty"),
        ("oa_secret_key", " ", "without spaces"),
        ("api_base", "zalo.example", "http(s) URL"),
        ("oauth_base", "ftp://x", "http(s) URL"),
        ("reply_window_hours", 0, "more than 0"),
        ("reply_window_hours", 169, "at most 168"),
        ("reply_window_hours", float("nan"), "more than 0"),
        ("signature_key", "hmac", "oa_secret_key"),
        ("signature_id", "user_id", "app_id"),
        ("webhook_url", "https://x", "Extra inputs"),
    ],
)
def test_settings_reject_mistakes_clearly_without_echoing_them(
    field: str, value: object, says: str
) -> None:
    with pytest.raises(ValidationError) as err:
        settings(**{field: value})
    assert says in str(err.value)
    if isinstance(value, str) and len(value) > 3:
        assert value not in str(err.value)


def test_settings_require_the_credentials() -> None:
    with pytest.raises(ValidationError) as err:
        ZaloAdapter.Settings(oa_id=OA, app_id=APP_ID)
    for name in ("oa_secret_key", "app_secret", "access_token", "refresh_token"):
        assert name in str(err.value)


def test_facts_and_registry() -> None:
    f = make_adapter(reply_window_hours=24).facts()
    assert f.reply_window_s == 24 * 3600 and f.human_agent_window_s is None
    assert f.verifiable_identifiers == frozenset({"phone"})
    assert f.redelivery_horizon_s == 86400
    assert [(r.scope, r.count, r.per_seconds) for r in f.rate_limits] == [("channel", 4000, 60.0)]
    assert resolve_adapter("zalo") is ZaloAdapter


def test_window_follows_reply_window_hours() -> None:
    now = 1_750_000_000_000
    adapter = make_adapter()
    assert adapter.window(now - 47 * 3_600_000, now, AuthorKind.AGENT).open
    closed = adapter.window(now - 49 * 3_600_000, now, AuthorKind.AGENT)
    assert not closed.open and "49.0 h" in closed.reason and "48 h" in closed.reason
    assert (
        make_adapter(reply_window_hours=72).window(now - 49 * 3_600_000, now, AuthorKind.AGENT).open
    )


# -- simulate -----------------------------------------------------------------------------------
@pytest.mark.parametrize("alt", [{}, {"signature_key": "app_secret", "signature_id": "oa_id"}])
def test_simulate_is_signed_and_parses_to_a_message(alt: dict) -> None:
    adapter = make_adapter(**alt)
    headers, body = adapter.simulate("Xin chào, tôi cần hỗ trợ", "5550001", "Minh")
    adapter.verify(headers, body)
    adapter.check_body(body)
    event = orjson.loads(body)
    assert isinstance(event["timestamp"], str) and isinstance(event["sender"]["id"], str)
    (ev,) = adapter.parse(RawEvent("zalo-test", body, headers, RECEIVED_MS))
    assert (ev.kind, ev.text, ev.external_user_id, ev.address, ev.direction) == (
        EventKind.MESSAGE,
        "Xin chào, tôi cần hỗ trợ",
        "5550001",
        "5550001",
        IN,
    )
    assert abs(ev.platform_ts_ms - time.time() * 1000) < 60_000
    _, body2 = adapter.simulate("again", "5550001", "Minh")
    assert parse_body(body2)[0].dedupe_key != ev.dedupe_key
    if alt:
        with pytest.raises(SignatureError):
            make_adapter().verify(headers, body)


# -- send against the fake Zalo ------------------------------------------------------------------
@pytest.fixture
def fake() -> FakeZaloAPI:
    with FakeZaloAPI(app_id=APP_ID) as api:
        yield api


def out(
    text: str | None = "Chào bạn, shop kiểm tra ngay nhé", address: str = USER, **kw: object
) -> OutboundMessage:
    return OutboundMessage(
        address=address, text=text, author_kind=AuthorKind.AGENT, idempotency_key="msg-1", **kw
    )


def cs_calls(fake: FakeZaloAPI) -> list:
    return [c for c in fake.calls if c[0] == "/v3.0/oa/message/cs"]


def test_send_text(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(fake.base_url)
    receipt = adapter.send(out())
    assert fake.sent() == [
        {"recipient": {"user_id": USER}, "message": {"text": "Chào bạn, shop kiểm tra ngay nhé"}}
    ]
    (call,) = cs_calls(fake)
    assert call[1] == {"access_token": ACCESS_TOKEN}
    assert len(receipt.external_id) == 20 and receipt.sent_ts_ms > 0
    assert receipt.raw["message_ids"] == [receipt.external_id]
    assert receipt.raw["quota"]["remain"] == "7"
    assert adapter.sent_dedupe_keys(out(), receipt) == [f"m:{receipt.external_id}"]


def test_send_images_by_url_and_files_as_links(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(fake.base_url)
    receipt = adapter.send(
        out(
            "Mẫu mới đây ạ",
            attachments=[
                Attachment("image", url="https://example.vn/a.jpg"),
                Attachment("file", url="https://example.vn/bang-gia.pdf", name="bang-gia.pdf"),
                Attachment("image", url="https://example.vn/b.jpg"),
            ],
        )
    )
    media = {
        "type": "template",
        "payload": {
            "template_type": "media",
            "elements": [{"media_type": "image", "url": "https://example.vn/a.jpg"}],
        },
    }
    first, second = (s["message"] for s in fake.sent())
    assert first == {
        "text": "Mẫu mới đây ạ\nbang-gia.pdf: https://example.vn/bang-gia.pdf",
        "attachment": media,
    }
    assert second["attachment"]["payload"]["elements"][0]["url"] == "https://example.vn/b.jpg"
    assert "text" not in second
    assert len(receipt.raw["message_ids"]) == 2
    assert adapter.sent_dedupe_keys(out(), receipt) == [
        f"m:{i}" for i in receipt.raw["message_ids"]
    ]


def test_send_splits_long_text_and_normalises_to_nfc(fake: FakeZaloAPI) -> None:
    decomposed = "Cho mình hỏi giá".replace("ỏ", "o\u0309")  # o + combining hook above
    long = "\n".join([decomposed] + ["x" * 1500, "y" * 1500])
    make_adapter(fake.base_url).send(out(long))
    texts = [s["message"]["text"] for s in fake.sent()]
    assert all(len(t) <= 2000 for t in texts) and len(texts) == 2
    assert texts[0].startswith("Cho mình hỏi giá") and "\u0309" not in texts[0]
    assert "".join(texts).replace("\n", "") == long.replace("\n", "").replace("o\u0309", "ỏ")


def test_nothing_or_unsendable_attachments_are_refused_before_calling(fake: FakeZaloAPI) -> None:
    for msg in (out(None), out(None, attachments=[Attachment("file", file_id="tg-file-1")])):
        with pytest.raises(DeliveryError) as err:
            make_adapter(fake.base_url).send(msg)
        assert not err.value.retryable and err.value.code == "bad_request"
    assert fake.calls == []


def test_expired_token_is_refreshed_and_the_send_retried_once(fake: FakeZaloAPI) -> None:
    store = MemoryTokenStore({"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN})
    adapter = make_adapter(fake.base_url, store)
    fake.expire_access_token()
    receipt = adapter.send(out())
    assert len(fake.sent()) == 1 and receipt.external_id
    assert fake.refreshes == 1
    assert store.pair == {"access_token": fake.access_token, "refresh_token": fake.refresh_token,
                          "expires_in": "90000"}  # Zalo's answer: for `channels list`
    paths = [c[0] for c in fake.calls]
    assert paths == ["/v3.0/oa/message/cs", TOKEN_PATH, "/v3.0/oa/message/cs"]
    _, headers, form = fake.calls[1]
    assert headers == {"secret_key": APP_SECRET}
    assert form == {"refresh_token": REFRESH_TOKEN, "app_id": APP_ID, "grant_type": "refresh_token"}
    # the next send uses the stored pair straight away
    adapter.send(out("again"))
    assert cs_calls(fake)[-1][1] == {"access_token": store.pair["access_token"]}
    assert fake.refreshes == 1


def test_an_empty_store_starts_from_the_configured_pair(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(fake.base_url)  # the default MemoryTokenStore() holds nothing
    fake.expire_access_token()
    adapter.send(out())
    assert fake.refreshes == 1 and fake.calls[1][2]["refresh_token"] == REFRESH_TOKEN
    assert adapter.token_store.current()["access_token"] == fake.access_token


def test_a_second_rotation_of_the_same_token_does_not_refresh_again(fake: FakeZaloAPI) -> None:
    store = MemoryTokenStore({"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN})
    first, second = make_adapter(fake.base_url, store), make_adapter(fake.base_url, store)
    fake.expire_access_token()
    first.send(out())
    assert fake.refreshes == 1
    # another worker that still holds the old token: it gets the stored pair, no refresh
    assert store.rotate(ACCESS_TOKEN, second._refresh) == store.pair
    assert second._rotate(ACCESS_TOKEN) == store.pair["access_token"]
    assert fake.refreshes == 1 and fake.burnt_refresh_uses == 0
    second.send(out("from the second worker"))
    assert len(fake.sent()) == 2 and fake.refreshes == 1


def test_separate_stores_burn_the_refresh_token_and_the_fake_shows_it(fake: FakeZaloAPI) -> None:
    pair = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN}
    a = make_adapter(fake.base_url, MemoryTokenStore(pair))
    b = make_adapter(fake.base_url, MemoryTokenStore(pair))  # what a per-process store does
    fake.expire_access_token()
    a.send(out())
    with pytest.raises(DeliveryError) as err:
        b.send(out())
    assert fake.burnt_refresh_uses == 1 and fake.refreshes == 1
    assert (err.value.retryable, err.value.code) == (False, "unauthorized")
    assert len(fake.sent()) == 1


def test_burnt_refresh_token_is_final_and_says_how_to_fix_it(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(
        fake.base_url,
        MemoryTokenStore({"access_token": "AT-stale", "refresh_token": "RT-already-used-once"}),
    )
    with pytest.raises(DeliveryError) as err:
        adapter.send(out())
    e = err.value
    assert (e.retryable, e.code) == (False, "unauthorized")
    assert "tongdai channels zalo authorize zalo-test --code CODE" in str(e)
    assert "-14014" in str(e) and "Invalid refresh token" in str(e)
    assert "RT-already-used-once" not in str(e) and "AT-stale" not in str(e)
    assert_no_secrets(e)
    assert fake.sent() == []


def test_token_rejected_again_after_refresh_is_final(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(fake.base_url)
    fake.expire_access_token()
    fake.fail_next(-216, "Access token is invalid")  # the retry is refused as well
    with pytest.raises(DeliveryError) as err:
        adapter.send(out())
    assert (err.value.retryable, err.value.code) == (False, "unauthorized")
    assert fake.refreshes == 1 and len(cs_calls(fake)) == 2
    assert_no_secrets(err.value, fake.access_token, fake.refresh_token)


def test_wrong_app_secret_fails_the_refresh(fake: FakeZaloAPI) -> None:
    adapter = make_adapter(fake.base_url, app_secret="not-the-app-secret")
    fake.expire_access_token()
    with pytest.raises(DeliveryError) as err:
        adapter.send(out())
    assert err.value.code == "unauthorized" and "not-the-app-secret" not in str(err.value)


def assert_no_secrets(e: Exception, *more: str | None) -> None:
    text = f"{e} {e.__cause__!r} {e.__context__ if not e.__suppress_context__ else ''}"
    for secret in (*SECRETS, *(m for m in more if m)):
        assert secret not in text


def send_error(fake: FakeZaloAPI, code: int, message: str = "") -> DeliveryError:
    fake.fail_next(code, message)
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out())
    assert_no_secrets(err.value)
    assert fake.base_url not in str(err.value)
    return err.value


def test_no_interaction_for_7_days_is_window_closed(fake: FakeZaloAPI) -> None:
    e = send_error(fake, -230, "User has not interacted with the OA in the past 7 days")
    assert isinstance(e, WindowClosed)
    assert (e.retryable, e.code) == (False, "window_closed") and "-230" in str(e)


def test_not_following_or_blocked_is_final(fake: FakeZaloAPI) -> None:
    e = send_error(fake, -213, "User has not followed OA")
    assert (e.retryable, e.code) == (False, "blocked") and "User has not followed OA" in str(e)


def test_rate_limit_is_retryable(fake: FakeZaloAPI) -> None:
    e = send_error(fake, -32, "Your OA reached limit call api")
    assert (e.retryable, e.code, e.retry_after) == (True, "rate_limited", 60)


@pytest.mark.parametrize(
    ("code", "retryable", "kind"),
    [
        (-201, False, "bad_request"),
        (-200, True, "server_error"),
        (-211, True, "quota_exceeded"),
        (-223, False, "unauthorized"),
        (-999, False, "bad_request"),
    ],
)
def test_other_zalo_codes(fake: FakeZaloAPI, code: int, retryable: bool, kind: str) -> None:
    e = send_error(fake, code, "Some Zalo message")
    assert (e.retryable, e.code) == (retryable, kind) and str(code) in str(e)


def test_http_5xx_is_retryable_4xx_is_not(fake: FakeZaloAPI) -> None:
    for status, retryable in ((500, True), (502, True), (429, True), (403, False)):
        fake.fail_next_http(status)
        with pytest.raises(DeliveryError) as err:
            make_adapter(fake.base_url).send(out())
        assert err.value.retryable is retryable, status
        assert_no_secrets(err.value)


def test_connection_refused_is_retryable() -> None:
    api = FakeZaloAPI(app_id=APP_ID)
    base = api.start()
    api.stop()
    with pytest.raises(DeliveryError) as err:
        make_adapter(base).send(out())
    assert err.value.retryable and err.value.code == "network"
    assert base not in str(err.value) and err.value.__suppress_context__
    assert_no_secrets(err.value)


def test_a_failure_after_a_first_part_is_not_retried(fake: FakeZaloAPI) -> None:
    msg = out(
        "caption",
        attachments=[
            Attachment("image", url="https://e.vn/1.jpg"),
            Attachment("image", url="https://e.vn/2.jpg"),
        ],
    )
    adapter = make_adapter(fake.base_url)
    fake.fail_next(-200, "Send message failed")  # the first part: nothing went out, retry
    with pytest.raises(DeliveryError) as err:
        adapter.send(msg)
    assert err.value.retryable and fake.sent() == []
    fake.fail_next(-200, "Send message failed", after=1)  # the second part, after the first
    with pytest.raises(DeliveryError) as err:
        adapter.send(msg)
    assert not err.value.retryable and "after 1 of 2 parts" in str(err.value)
    assert len(fake.sent()) == 1


@pytest.mark.parametrize("hours", [49, 100])
def test_window_closed_at_49_hours_without_calling_zalo(fake: FakeZaloAPI, hours: int) -> None:
    last = time.time_ns() // 1_000_000 - hours * 3_600_000
    with pytest.raises(WindowClosed) as err:
        make_adapter(fake.base_url).send(out(last_inbound_ts_ms=last))
    assert fake.calls == [] and err.value.code == "window_closed"
    assert "48 h" in str(err.value)


def test_window_open_at_47_hours_and_wider_by_setting(fake: FakeZaloAPI) -> None:
    now = time.time_ns() // 1_000_000
    make_adapter(fake.base_url).send(out(last_inbound_ts_ms=now - 47 * 3_600_000))
    make_adapter(fake.base_url, reply_window_hours=72).send(
        out(last_inbound_ts_ms=now - 49 * 3_600_000)
    )
    assert len(fake.sent()) == 2


def test_httpx_log_carries_no_token(fake: FakeZaloAPI, caplog: pytest.LogCaptureFixture) -> None:
    adapter = make_adapter(fake.base_url)
    fake.expire_access_token()
    # the httpx logger's own level: an in-process CLI run earlier in the session quietens it
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        adapter.send(out())
        adapter.fetch_profile(USER)
    assert "message/cs" in caplog.text
    for secret in (*SECRETS, fake.access_token, fake.refresh_token):
        assert secret not in caplog.text


# -- replies to anonymous users --------------------------------------------------------------------
ANON_ID, CONV_ID = "6817391530946127346", "c0a8e6f4d2b0a8c6e4f2"  # as in fixture 14


def anon_out(text: str | None = "Dạ shop mở cửa 8h-22h ạ", **kw: object) -> OutboundMessage:
    return out(text, address=f"anon:{ANON_ID}:{CONV_ID}", **kw)


def test_reply_to_an_anonymous_event_goes_to_the_anonymous_endpoint(fake: FakeZaloAPI) -> None:
    (ev,) = parse_body((FIXTURES / "14_anonymous_send_text_docs.json").read_bytes())
    adapter = make_adapter(fake.base_url)
    msg = anon_out()
    assert msg.address == ev.address
    receipt = adapter.send(msg)
    assert fake.sent() == [
        {
            "recipient": {"anonymous_id": ANON_ID, "conversation_id": CONV_ID},
            "message": {"text": "Dạ shop mở cửa 8h-22h ạ"},
        }
    ]
    ((path, headers, _),) = fake.calls
    assert (path, headers) == (ANON_PATH, {"access_token": ACCESS_TOKEN})
    assert receipt.raw == {
        "anonymous_id": ANON_ID,
        "conversation_id": CONV_ID,
        "message_ids": [receipt.external_id],
    }
    assert receipt.sent_ts_ms > 0
    assert adapter.sent_dedupe_keys(msg, receipt) == [f"m:{receipt.external_id}"]


def test_anonymous_reply_with_images_and_links(fake: FakeZaloAPI) -> None:
    make_adapter(fake.base_url).send(
        anon_out(
            "Ảnh đây ạ",
            attachments=[
                Attachment("image", url="https://example.vn/a.jpg"),
                Attachment("file", url="https://example.vn/menu.pdf", name="menu.pdf"),
            ],
        )
    )
    (body,) = fake.sent()
    assert body["recipient"] == {"anonymous_id": ANON_ID, "conversation_id": CONV_ID}
    assert body["message"]["text"] == "Ảnh đây ạ\nmenu.pdf: https://example.vn/menu.pdf"
    assert body["message"]["attachment"]["payload"]["elements"] == [
        {"media_type": "image", "url": "https://example.vn/a.jpg"}
    ]
    assert cs_calls(fake) == []


def test_anonymous_reply_rotates_a_rejected_token_once(fake: FakeZaloAPI) -> None:
    store = MemoryTokenStore({"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN})
    adapter = make_adapter(fake.base_url, store)
    fake.expire_access_token()
    receipt = adapter.send(anon_out())
    assert receipt.external_id and len(fake.sent()) == 1 and fake.refreshes == 1
    assert [c[0] for c in fake.calls] == [ANON_PATH, TOKEN_PATH, ANON_PATH]
    assert fake.calls[-1][1] == {"access_token": store.pair["access_token"]}
    # rejected again right after the refresh: final, and not refreshed a second time
    fake.expire_access_token()
    fake.fail_next(-216, "Access token is invalid", path=ANON_PATH)
    with pytest.raises(DeliveryError) as err:
        adapter.send(anon_out("again"))
    assert (err.value.retryable, err.value.code) == (False, "unauthorized")
    assert fake.refreshes == 2 and len(fake.sent()) == 1
    assert_no_secrets(err.value, fake.access_token, fake.refresh_token)


@pytest.mark.parametrize(
    ("code", "retryable", "kind"),
    [(-230, False, "window_closed"), (-213, False, "blocked"), (-32, True, "rate_limited")],
)
def test_anonymous_reply_errors_map_like_consultation_ones(
    fake: FakeZaloAPI, code: int, retryable: bool, kind: str
) -> None:
    fake.fail_next(code, "Some Zalo message", path=ANON_PATH)
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(anon_out())
    assert (err.value.retryable, err.value.code) == (retryable, kind)
    assert "anonymous message" in str(err.value) and str(code) in str(err.value)
    assert_no_secrets(err.value)


@pytest.mark.parametrize("address", [f"anon:{ANON_ID}:", "anon:", f"anon::{CONV_ID}"])
def test_anonymous_address_without_both_ids_is_refused_before_calling(
    fake: FakeZaloAPI, address: str
) -> None:
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out(address=address))
    assert (err.value.retryable, err.value.code) == (False, "bad_request")
    assert "conversation_id" in str(err.value) and fake.calls == []


def test_fake_anonymous_endpoint_checks_token_and_both_ids() -> None:
    with FakeZaloAPI() as api:
        url, text = f"{api.base_url}{ANON_PATH}", {"text": "x"}
        both = {"anonymous_id": ANON_ID, "conversation_id": CONV_ID}
        r = httpx.post(url, json={"recipient": both, "message": text})
        assert r.json()["error"] == -216  # no access token
        ok = {"access_token": ACCESS_TOKEN}
        r = httpx.post(
            url, json={"recipient": {"anonymous_id": ANON_ID}, "message": text}, headers=ok
        )
        assert r.json() == {"error": -201, "message": "conversation_id is invalid!"}
        r = httpx.post(url, json={"recipient": both, "message": text}, headers=ok)
        assert r.json()["error"] == 0 and r.json()["data"]["conversation_id"] == CONV_ID
        assert api.sent() == [{"recipient": both, "message": text}]


# -- OAuth code exchange and profiles ------------------------------------------------------------
def test_exchange_code_stores_the_pair(fake: FakeZaloAPI) -> None:
    store = MemoryTokenStore()
    adapter = make_adapter(fake.base_url, store)
    code = fake.issue_code()
    pair = adapter.exchange_code(code, code_verifier="v" * 43)
    assert pair == {"access_token": fake.access_token, "refresh_token": fake.refresh_token,
                    "expires_in": "90000"}
    assert store.current() == pair
    ((path, headers, form),) = fake.calls
    assert (path, headers) == (TOKEN_PATH, {"secret_key": APP_SECRET})
    assert form == {
        "code": code,
        "app_id": APP_ID,
        "grant_type": "authorization_code",
        "code_verifier": "v" * 43,
    }
    adapter.send(out())  # the new pair works
    assert cs_calls(fake)[0][1] == {"access_token": pair["access_token"]}
    with pytest.raises(DeliveryError) as err:  # codes are single-use
        adapter.exchange_code(code)
    assert err.value.code == "unauthorized" and "10 minutes" in str(err.value)
    assert code not in str(err.value) and store.current() == pair


def test_fetch_profile_reads_the_user_detail_answer(fake: FakeZaloAPI) -> None:
    answer = orjson.loads((FIXTURES / "04_user_detail_response_real.json").read_bytes())
    fake.add_user(TRONG, answer["data"])
    adapter = make_adapter(fake.base_url)
    assert adapter.fetch_profile(TRONG) == {
        "name": "Trong Giap",
        "picture": "https://s120-ava-talk.zadn.vn/d/9/d/e/1/120/"
        "510b4d41b859f5b9998bef47370417a6.jpg",
    }
    path, headers, params = fake.calls[-1]
    assert (path, headers) == (PROFILE_PATH, {"access_token": ACCESS_TOKEN})
    assert orjson.loads(params["data"]) == {"user_id": TRONG}
    assert adapter.fetch_profile("123") is None  # unknown user: Zalo answers an error
    fake.expire_access_token()
    assert adapter.fetch_profile(TRONG)["name"] == "Trong Giap"  # refreshed on the way
    fake.fail_next_http(500, path=PROFILE_PATH)
    assert adapter.fetch_profile(TRONG) is None


def test_fake_answers_unknown_paths() -> None:
    with FakeZaloAPI() as api:
        r = httpx.post(f"{api.base_url}/v2.0/oa/listrecentchat", json={})
        assert r.status_code == 404
        r = httpx.post(
            f"{api.base_url}{TOKEN_PATH}",
            data={"app_id": APP_ID, "grant_type": "password"},
            headers={"secret_key": APP_SECRET},
        )
        assert r.json()["error"] < 0
