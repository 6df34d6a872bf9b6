"""The Telegram adapter on its own: fixtures in, events out; sends against a fake Bot API."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import ValidationError

from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tongdai.adapters.base import OutboundMessage
from tongdai.adapters.telegram import SECRET_HEADER, TelegramAdapter
from tongdai.core.errors import DeliveryError, PayloadError, SignatureError
from tongdai.core.models import Attachment, AuthorKind, EventKind, InboundEvent, RawEvent

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
TOKEN = DEFAULT_TOKEN
SECRET = "webhook_Secret-42"
RECEIVED_MS = 1_700_000_000_123


def make_adapter(api_base: str = "https://api.telegram.org", token: str = TOKEN) -> TelegramAdapter:
    settings = TelegramAdapter.Settings(bot_token=token, secret_token=SECRET, api_base=api_base)
    return TelegramAdapter("tg-test", settings, http=httpx.Client(timeout=5.0))


def parse_body(body: bytes) -> list[InboundEvent]:
    return make_adapter().parse(RawEvent("tg-test", body, {}, RECEIVED_MS))


def parse_fixture(name: str) -> InboundEvent:
    events = parse_body((FIXTURES / f"{name}.json").read_bytes())
    assert len(events) == 1
    return events[0]


# -- every fixture --------------------------------------------------------------------------
WORKER, THAI_GROUP = "527317977", "-1001319789908"
LAN = "7012345678"
EXPECTED: dict[str, dict] = {
    "01_text_supergroup": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:-1001319789908:30",
        "external_user_id": "526634663",
        "address": THAI_GROUP,
        "text": "Hi p bot",
        "platform_ts_ms": 1529445769000,
        "external_message_id": "30",
        "profile": {"name": "Matsumoto. CXA", "username": "MatsumotoX"},
    },
    "02_new_chat_members": {
        "kind": EventKind.SYSTEM,
        "dedupe_key": "m:-1001319789908:77",
        "external_user_id": "526634663",
        "address": THAI_GROUP,
        "text": "Hellobot joined",
        "platform_type": "new_chat_members",
    },
    "03_left_chat_member_kicked": {
        "kind": EventKind.SYSTEM,
        "dedupe_key": "m:-1001319789908:76",
        "text": "Hellobot left",
        "platform_type": "left_chat_member",
    },
    "04_sticker": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:-1001319789908:193",
        "external_user_id": WORKER,
        "address": THAI_GROUP,
        "text": None,
        "profile": {"name": "Worakorn CXA", "username": "WorakornX", "language": "en-TH"},
    },
    "05_photo_sizes": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:-1001319789908:203",
        "text": None,
    },
    "06_voice": {"kind": EventKind.MESSAGE, "dedupe_key": "m:-1001319789908:205"},
    "07_video_note": {"kind": EventKind.MESSAGE, "dedupe_key": "m:-1001319789908:213"},
    "08_location": {"kind": EventKind.MESSAGE, "dedupe_key": "m:-1001319789908:217", "text": None},
    "09_document_thai_filename": {"kind": EventKind.MESSAGE, "dedupe_key": "m:-1001319789908:219"},
    "10_contact_shared_phone": {
        "kind": EventKind.CONTACT_SHARED,
        "dedupe_key": "m:-1001319789908:221",
        "external_user_id": WORKER,
    },
    "11_private_command_cyrillic": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": "m:666857351:18",
        "external_user_id": "666857351",
        "address": "666857351",
        "text": "/добавитьЗадачу",
        "platform_ts_ms": 1622894285000,
        "profile": {"name": "Александр Романенко", "language": "ru"},
    },
    "12_edited_message_cyrillic": {
        "kind": EventKind.EDIT,
        "dedupe_key": "e:666857351:18:1622897563",
        "target_ids": ["m:666857351:18"],
        "external_user_id": "666857351",
        "address": "666857351",
        "platform_ts_ms": 1622897563000,
        "text": "/добавитьЗадачу написать тест",
        "platform_type": "edited_message",
    },
    "13_callback_query_fixture": {
        "kind": EventKind.POSTBACK,
        "dedupe_key": "cb:4382bf",
        "payload": "approve:run-17",
        "external_user_id": "1111111",
        "address": "-1001234567890",
        "platform_ts_ms": RECEIVED_MS,
        "target_ids": ["m:-1001234567890:4242"],
    },
    "20_private_text_vietnamese": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": f"m:{LAN}:1201",
        "external_user_id": LAN,
        "address": LAN,
        "text": "Cho mình hỏi nạp thẻ bị lỗi",
        "profile": {"name": "Nguyễn Thị Lan", "username": "lan_nguyen", "language": "vi"},
    },
    "21_private_photo_caption": {
        "kind": EventKind.MESSAGE,
        "dedupe_key": f"m:{LAN}:1202",
        "text": "Ảnh chụp màn hình lỗi nạp thẻ",
    },
    "22_contact_own_number": {
        "kind": EventKind.CONTACT_SHARED,
        "dedupe_key": f"m:{LAN}:1203",
        "external_user_id": LAN,
        "address": LAN,
    },
    "23_my_chat_member_kicked_private": {
        "kind": EventKind.UNFOLLOW,
        "dedupe_key": "u:912345004",
        "external_user_id": LAN,
        "address": LAN,
        "platform_ts_ms": 1732349999000,
    },
    "24_message_reaction": {
        "kind": EventKind.REACTION,
        "dedupe_key": "u:912345005",
        "external_user_id": LAN,
        "address": LAN,
        "reaction": "👍",
        "target_ids": [f"m:{LAN}:1201"],
        "platform_ts_ms": 1732346000000,
    },
}
# Fixtures of updates the hub has nothing to do with: no event (not a dead letter).
IGNORED = {"25_channel_post"}
ATTACHMENTS: dict[str, Attachment] = {
    "04_sticker": Attachment(
        "sticker",
        file_id="CAADBQADHAADyIsGAAFzjQavel2uswI",
        size=39518,
        meta={"emoji": "💪", "set_name": "TelegramGreatMinds"},
    ),
    "05_photo_sizes": Attachment(
        "image",
        file_id="AgADBQADb6gxG7HYWFXjxGdwHoDwJ1lN1TIABM380eM9qbstx1cBAAEC",
        size=100634,
        meta={"width": 1280, "height": 684},
    ),
    "06_voice": Attachment(
        "voice",
        file_id="AwADBQADJgADsdhYVfc01ObqFg9_Ag",
        mime="audio/ogg",
        size=2889,
        meta={"duration": 1},
    ),
    "07_video_note": Attachment(
        "video_note",
        file_id="DQADBQADKAADsdhYVbkDQ7_p99NvAg",
        size=109288,
        meta={"duration": 2, "length": 240},
    ),
    "08_location": Attachment("location", meta={"latitude": 13.67455, "longitude": 100.534625}),
    "09_document_thai_filename": Attachment(
        "file",
        file_id="BQADBQADKQADsdhYVe_conWOrBsAAQI",
        name="หนังสือรับรองการผ่านงาน.pdf",
        mime="application/pdf",
        size=200644,
    ),
    "10_contact_shared_phone": Attachment(
        "contact", meta={"phone_number": "0815432345", "first_name": "Wundzen 💎"}
    ),
    "21_private_photo_caption": Attachment(
        "image",
        file_id="AgACAgUAAxkBAAIEsmdBz1Tq0largeXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        size=98311,
        meta={"width": 1280, "height": 720, "unique_id": "AQADq7sxG1a0aFZ-"},
    ),
    "22_contact_own_number": Attachment(
        "contact",
        meta={
            "phone_number": "+84901234567",
            "first_name": "Nguyễn",
            "last_name": "Thị Lan",
            "user_id": 7012345678,
        },
    ),
}


def test_every_fixture_has_an_expectation() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert names == set(EXPECTED) | IGNORED
    assert all((FIXTURES / f"{n}.source.txt").exists() for n in names)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_event(name: str) -> None:
    event = parse_fixture(name)
    for attr, want in EXPECTED[name].items():
        assert getattr(event, attr) == want, attr
    if name in ATTACHMENTS:
        assert event.attachments == [ATTACHMENTS[name]]
    elif event.kind is not EventKind.SYSTEM:
        assert event.attachments == []


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_fixture_the_hub_does_not_handle_is_no_event(name: str) -> None:
    assert parse_body((FIXTURES / f"{name}.json").read_bytes()) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"update_id": 5}',  # signed, but nothing in it
        b'{"update_id": 5, "message": null}',
        b'{"update_id": 5, "edited_message": {}}',
        b'{"update_id": 5, "poll": {"id": "1", "question": "?", "options": []}}',  # not asked for
        b'{"update_id": 5, "inline_query": {"id": "1", "from": {"id": 7}, "query": "x"}}',
    ],
)
def test_update_without_content_is_no_event(body: bytes) -> None:
    assert parse_body(body) == []


def test_contact_identifier_verified_only_for_own_number() -> None:
    other = parse_fixture("10_contact_shared_phone").identifier
    own = parse_fixture("22_contact_own_number").identifier
    assert other is not None and own is not None
    assert (other.kind, other.value, other.verified) == ("phone", "0815432345", False)
    assert (own.kind, own.value, own.verified) == ("phone", "+84901234567", True)
    assert own.source == "telegram_contact"


def test_contact_of_someone_else_with_user_id_is_not_verified() -> None:
    body = orjson.loads((FIXTURES / "22_contact_own_number.json").read_bytes())
    body["message"]["contact"]["user_id"] = 999
    (event,) = parse_body(orjson.dumps(body))
    assert event.identifier is not None and event.identifier.verified is False


def test_update_without_update_id_still_dedupes_per_message() -> None:
    body = (FIXTURES / "11_private_command_cyrillic.json").read_bytes()
    assert b"update_id" not in body
    assert parse_body(body)[0].dedupe_key == "m:666857351:18"


def test_edit_targets_the_original_message() -> None:
    original = parse_fixture("11_private_command_cyrillic")
    edit = parse_fixture("12_edited_message_cyrillic")
    assert edit.target_ids == [original.dedupe_key]


def _message(**fields: object) -> bytes:
    msg = {
        "message_id": 5,
        "from": {"id": 42, "first_name": "A"},
        "chat": {"id": 42, "type": "private"},
        "date": 1700000000,
    } | fields
    return orjson.dumps({"update_id": 1, "message": msg})


def test_reply_venue_and_animation_mapping() -> None:
    (reply,) = parse_body(_message(text="ok", reply_to_message={"message_id": 3}))
    assert reply.reply_to == "m:42:3"
    venue = {"location": {"latitude": 1.5, "longitude": 2.5}, "title": "Shop", "address": "1 St"}
    (ev,) = parse_body(_message(venue=venue, location=venue["location"]))
    assert ev.attachments == [
        Attachment(
            "location", meta={"latitude": 1.5, "longitude": 2.5, "title": "Shop", "address": "1 St"}
        )
    ]
    anim = {"file_id": "A1", "file_name": "x.mp4", "mime_type": "video/mp4", "duration": 2}
    (ev,) = parse_body(_message(animation=anim, document=anim, caption="lol"))
    assert [a.kind for a in ev.attachments] == ["animation"] and ev.text == "lol"


def test_unknown_message_content_is_unsupported_not_dropped() -> None:
    (ev,) = parse_body(_message(dice={"emoji": "🎲", "value": 3}))
    assert (ev.kind, ev.platform_type, ev.dedupe_key) == (EventKind.UNSUPPORTED, "dice", "m:42:5")


def test_reaction_removed_and_bot_unblocked() -> None:
    body = orjson.loads((FIXTURES / "24_message_reaction.json").read_bytes())
    body["message_reaction"]["new_reaction"] = []
    assert parse_body(orjson.dumps(body))[0].reaction is None
    body = orjson.loads((FIXTURES / "23_my_chat_member_kicked_private.json").read_bytes())
    body["my_chat_member"]["new_chat_member"]["status"] = "member"
    assert parse_body(orjson.dumps(body))[0].kind is EventKind.FOLLOW


@pytest.mark.parametrize(
    "body",
    [
        b'{"update_id": 1, "message": {"message_id": 5, "date": 1}}',  # no chat
        b'{"update_id": 1, "message": {"chat": {"id": 1}, "date": 1}}',  # no message_id
        b'{"update_id": 1, "message": "hello"}',
        b"[1, 2]",
        b"not json",
    ],
)
def test_malformed_updates_raise_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_body(body)


# -- verify and check_body ----------------------------------------------------------------------
def test_verify_accepts_the_secret_in_any_header_case() -> None:
    adapter = make_adapter()
    adapter.verify({SECRET_HEADER: SECRET}, b"{}")
    adapter.verify({SECRET_HEADER.lower(): SECRET}, b"{}")
    from werkzeug.datastructures import Headers

    adapter.verify(Headers({"x-telegram-bot-api-secret-token": SECRET}), b"{}")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {SECRET_HEADER: "wrong"},
        {SECRET_HEADER: SECRET.upper()},  # secrets are case-sensitive, header names are not
        {SECRET_HEADER: SECRET + "x"},
        {SECRET_HEADER: ""},
    ],
)
def test_verify_rejects_missing_or_wrong_secret(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as err:
        make_adapter().verify(headers, b"{}")
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("body", [b"", b"{nope", b"[]", b'"text"', b"42"])
def test_check_body_rejects_non_objects(body: bytes) -> None:
    with pytest.raises(PayloadError):
        make_adapter().check_body(body)


def test_check_body_accepts_an_object() -> None:
    make_adapter().check_body((FIXTURES / "01_text_supergroup.json").read_bytes())


# -- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token",
    [
        "",
        "98765",
        "abc:defghijklmnopqrstuvwxyz",
        "123456:short",
        "123456:has spaces in the token part ok?",
    ],
)
def test_settings_reject_bad_tokens_without_echoing_them(token: str) -> None:
    with pytest.raises(ValidationError) as err:
        TelegramAdapter.Settings(bot_token=token, secret_token=SECRET)
    assert "looks like" in str(err.value)
    if token:
        assert token not in str(err.value)


@pytest.mark.parametrize("secret", ["", "has space", "x" * 257, "naïve", "semi;colon"])
def test_settings_reject_bad_secret_tokens(secret: str) -> None:
    with pytest.raises(ValidationError) as err:
        TelegramAdapter.Settings(bot_token=TOKEN, secret_token=secret)
    assert "1-256" in str(err.value)


def test_settings_normalise_api_base_and_forbid_unknown_keys() -> None:
    s = TelegramAdapter.Settings(
        bot_token=TOKEN, secret_token=SECRET, api_base="http://127.0.0.1:8081/"
    )
    assert s.api_base == "http://127.0.0.1:8081"
    assert TOKEN not in repr(s)
    with pytest.raises(ValidationError):
        TelegramAdapter.Settings(bot_token=TOKEN, secret_token=SECRET, webhook="x")


def test_facts() -> None:
    f = make_adapter().facts()
    assert f.reply_window_s is None and f.redelivery_horizon_s == 86400
    assert f.verifiable_identifiers == frozenset({"phone"})
    assert [(r.scope, r.count, r.per_seconds) for r in f.rate_limits] == [
        ("address", 1, 1.0),
        ("channel", 30, 1.0),
    ]


# -- simulate -----------------------------------------------------------------------------------
def test_simulate_is_signed_and_parses_to_a_message() -> None:
    adapter = make_adapter()
    headers, body = adapter.simulate("Xin chào, tôi cần hỗ trợ", "5550001", "Minh")
    adapter.verify(headers, body)
    adapter.check_body(body)
    (ev,) = adapter.parse(RawEvent("tg-test", body, headers, RECEIVED_MS))
    assert (ev.kind, ev.text, ev.external_user_id, ev.address) == (
        EventKind.MESSAGE,
        "Xin chào, tôi cần hỗ trợ",
        "5550001",
        "5550001",
    )
    assert ev.profile["name"] == "Minh"
    _, body2 = adapter.simulate("again", "5550001", "Minh")
    assert (
        adapter.parse(RawEvent("tg-test", body2, headers, RECEIVED_MS))[0].dedupe_key
        != ev.dedupe_key
    )


# -- send against the fake Bot API ------------------------------------------------------------
@pytest.fixture
def fake() -> FakeTelegramAPI:
    with FakeTelegramAPI(TOKEN) as api:
        yield api


def out(text: str | None = "Chào bạn, mình kiểm tra ngay nhé", **kw: object) -> OutboundMessage:
    return OutboundMessage(
        address="7012345678", text=text, author_kind=AuthorKind.AGENT, idempotency_key="msg-1", **kw
    )


def test_send_text(fake: FakeTelegramAPI) -> None:
    receipt = make_adapter(fake.base_url).send(out())
    assert fake.sent() == [{"chat_id": 7012345678, "text": "Chào bạn, mình kiểm tra ngay nhé"}]
    assert receipt.external_id == "1"
    assert receipt.raw["chat_id"] == 7012345678 and receipt.sent_ts_ms > 0
    assert make_adapter(fake.base_url).send(out()).external_id == "2"


def test_send_reply_and_attachments(fake: FakeTelegramAPI) -> None:
    adapter = make_adapter(fake.base_url)
    adapter.send(out("see above", reply_to_external_id="1201"))
    assert fake.sent()[0]["reply_parameters"] == {
        "message_id": 1201,
        "allow_sending_without_reply": True,
    }
    receipt = adapter.send(
        out(
            "here",
            attachments=[
                Attachment("image", url="https://example.com/a.png"),
                Attachment("file", url="https://example.com/b.pdf"),
            ],
        )
    )
    assert fake.sent("sendPhoto") == [
        {"chat_id": 7012345678, "photo": "https://example.com/a.png", "caption": "here"}
    ]
    assert fake.sent("sendDocument") == [
        {"chat_id": 7012345678, "document": "https://example.com/b.pdf"}
    ]
    assert receipt.external_id == "2" and receipt.raw["message_ids"] == [2, 3]


def send_error(fake: FakeTelegramAPI, *fail: object, **kw: object) -> DeliveryError:
    fake.fail_next("sendMessage", *fail, **kw)
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out())
    assert TOKEN not in str(err.value) and TOKEN.split(":")[1] not in str(err.value)
    assert fake.base_url not in str(err.value)
    return err.value


def test_rate_limited_is_retryable_with_retry_after(fake: FakeTelegramAPI) -> None:
    e = send_error(fake, 429, description="Too Many Requests: retry after 7", retry_after=7)
    assert (e.retryable, e.retry_after, e.code) == (True, 7, "rate_limited")


def test_server_error_is_retryable(fake: FakeTelegramAPI) -> None:
    e = send_error(fake, 500, description="Internal Server Error")
    assert e.retryable and e.code == "server_error"
    assert send_error(fake, 502).retryable


def test_blocked_by_user_is_final(fake: FakeTelegramAPI) -> None:
    e = send_error(fake, 403, description="Forbidden: bot was blocked by the user")
    assert (e.retryable, e.code) == (False, "blocked")
    assert "blocked by the user" in str(e)


def test_bad_request_is_final_with_telegrams_reason(fake: FakeTelegramAPI) -> None:
    e = send_error(fake, 400, description="Bad Request: chat not found")
    assert (e.retryable, e.code) == (False, "bad_request") and "chat not found" in str(e)


def test_bad_token_is_final(fake: FakeTelegramAPI) -> None:
    other = "987654321:AAOtherTokenThatTheFakeDoesNotKnow-x"
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url, token=other).send(out())
    assert (err.value.retryable, err.value.code) == (False, "unauthorized")
    assert other not in str(err.value) and "bot_token" in str(err.value)
    assert fake.sent() == []


def test_connection_refused_is_retryable() -> None:
    api = FakeTelegramAPI(TOKEN)
    base = api.start()
    api.stop()
    with pytest.raises(DeliveryError) as err:
        make_adapter(base).send(out())
    assert err.value.retryable and err.value.code == "network"
    assert TOKEN not in str(err.value) and base not in str(err.value)
    assert err.value.__suppress_context__  # httpx's message (with the URL) is not chained in


def test_nothing_to_send_is_final(fake: FakeTelegramAPI) -> None:
    with pytest.raises(DeliveryError) as err:
        make_adapter(fake.base_url).send(out(None))
    assert not err.value.retryable and fake.calls == []


def test_httpx_request_log_hides_the_token(
    fake: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        make_adapter(fake.base_url).send(out())
    assert "sendMessage" in caplog.text and "bot<token>" in caplog.text
    assert TOKEN not in caplog.text


def test_set_webhook_sends_secret_and_update_types(fake: FakeTelegramAPI) -> None:
    adapter = make_adapter(fake.base_url)
    answer = adapter.set_webhook("https://hub.example.com/webhooks/tg-test")
    assert answer["ok"] is True and answer["result"] is True
    (params,) = fake.sent("setWebhook")
    assert params["url"] == "https://hub.example.com/webhooks/tg-test"
    assert params["secret_token"] == SECRET
    assert params["allowed_updates"] == [
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "message_reaction",
    ]
    adapter.answer_callback_query("4382bf")
    adapter.delete_webhook()
    assert [m for m, _ in fake.calls] == ["setWebhook", "answerCallbackQuery", "deleteWebhook"]
    assert fake.sent("answerCallbackQuery") == [{"callback_query_id": "4382bf"}]


def test_fake_answers_unknown_methods_and_form_bodies(fake: FakeTelegramAPI) -> None:
    r = httpx.post(f"{fake.base_url}/bot{TOKEN}/noSuchMethod", json={})
    assert r.status_code == 404 and r.json()["description"] == "Not Found"
    r = httpx.post(f"{fake.base_url}/bot{TOKEN}/sendMessage", data={"chat_id": "5", "text": "hi"})
    assert r.json()["result"]["chat"]["id"] == 5 and fake.sent()[-1]["text"] == "hi"
