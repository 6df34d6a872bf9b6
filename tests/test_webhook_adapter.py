"""``adapter: webhook`` on its own: config mistakes named with key and fix, the three kinds of
verification, LINE's real payloads read by the shipped mapping, expressions meaning what
JMESPath means, and sends that tell success, "already sent", "later" and "never" apart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

import jmespath
import orjson
import pytest
import yaml
from click.testing import CliRunner
from jmespath.exceptions import JMESPathError

from tests.conftest import FIXTURES, write_config
from tests.fakes import bazaar_api as bz
from tests.fakes import line_api
from tests.fakes.server import FakeHandler, LocalHTTPServer
from tests.test_webhook_channels_e2e import line_channel_yaml
from tongdai.adapters.base import OutboundMessage
from tongdai.adapters.webhook import WebhookAdapter, WebhookSettings
from tongdai.adapters.webhook.expressions import EvaluationError, getter
from tongdai.core.config import ConfigInvalid, _substitute, load_config
from tongdai.core.errors import DeliveryError, SignatureError
from tongdai.core.models import Attachment, AuthorKind, EventKind, RawEvent


def settings(channel_yaml: str, **env: str) -> WebhookSettings:
    """A channel's settings from its YAML, ${VAR}s filled from ``env`` as the loader does."""
    (ch,) = yaml.safe_load(channel_yaml)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        errors: list = []
        data = _substitute(ch["settings"], "", "test", errors)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert not errors
    return WebhookSettings.model_validate(data)


def line_adapter(base: str = "http://127.0.0.1:9") -> WebhookAdapter:
    s = settings(line_channel_yaml(), LINE_CHANNEL_SECRET=line_api.CHANNEL_SECRET,
                 LINE_CHANNEL_ACCESS_TOKEN=line_api.ACCESS_TOKEN, LINE_API_BASE=base)
    return WebhookAdapter("line-oa", s)


def parse(adapter, name):
    return adapter.parse(RawEvent("line-oa", (FIXTURES / "line" / name).read_bytes(), {}, 7))


# -- config mistakes --------------------------------------------------------------------------
ID_LINE = "        id: join('/', [conversation.ref, to_string(seq)])\n"
MISTAKES = [  # (replacements in the Bazaar channel, what the error says, its fix)
    ([("customer_id: author.uid", "customer_id: author.[uid")],
     ("channels[bazaar].settings.events.customer_id: 'author.[uid' is not a valid JMESPath "
     "expression"), "Fix: write a JMESPath expression"),
    ([("        customer_id: author.uid\n", "")],
     "channels[bazaar].settings.events.customer_id: Field required", "Fix: add this key"),
    ([('text: "{{text}}"'.replace("{{", "{").replace("}}", "}"), 'text: "{txt}"')],
     "channels[bazaar].settings.send.body.content.text: unknown placeholder {txt}",
     "Fix: use {address}, {channel_id}, {idempotency_key}"),
    ([('X-Api-Key: "{secrets.api_key}"', 'X-Api-Key: "{secrets.apikey}"')],
     "channels[bazaar].settings.send.headers.X-Api-Key: secret 'apikey' is not defined",
     "Fix: add secrets: {apikey: ${ENV_VAR}}"),
    ([(ID_LINE, ""), ("        message_id: message.ref\n", "")],
     "channels[bazaar].settings.events.id: neither id nor message_id is mapped",
     "Fix: map id:"),
    ([("        target_id: message.ref\n", "")],
     ("channels[bazaar].settings.events.target_id: kinds message.edited, message.removed "
     "edit or delete a message, but target_id: is not mapped"), "Fix: map target_id:"),
    ([("        message_id: message.ref\n", "")],
     ("channels[bazaar].settings.events.message_id: kinds message.edited, message.removed name "
     "messages by their id, but message_id: is not mapped"), "Fix: map message_id:"),
    ([("reply_window: 72h", "reply_window: 72")],
     "channels[bazaar].settings.reply_window: 72 has no unit", ("Fix: write it with its unit, "
     "e.g. 72h, or none")),
    ([("        kind: hmac\n", "        kind: sha\n")],
     "channels[bazaar].settings.verify", "'hmac', 'token', 'none'"),
    ([("retry_when: \"status == 'queued_full'\"", "retry_when: \"status = 'queued_full'\"")],
     "channels[bazaar].settings.send.retry_when: \"status = 'queued_full'\" is not a valid",
     "Fix: write a JMESPath expression"),
]


@pytest.mark.parametrize(("edits", "says", "fix"), MISTAKES)
def test_mapping_mistakes_name_channel_key_and_fix(tmp_path, edits, says, fix):
    text = bz.channel_yaml("http://127.0.0.1:9")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "t.yaml", extra=text)))
    assert says in str(err.value)
    assert fix in str(err.value)
    assert bz.API_KEY not in str(err.value) and bz.SIGNING_SECRET not in str(err.value)


FILES_MISTAKES = [  # (files: of the LINE channel, what the error says, its fix)
    ({"url": "https://api-data.line.me/v2/bot/message/{fileid}/content"},
     "channels[line-oa].settings.files.url: unknown placeholder {fileid}",
     "Fix: use {channel_id}, {file_id}, {url} or {secrets.NAME}"),
    ({"url": "https://cdn.example/{url}"},
     "channels[line-oa].settings.files.url: {url} is the whole address the platform sent",
     'Fix: write url: "{url}" alone'),
    ({"url": "{url}", "kinds": ["image", "photo"]},
     "channels[line-oa].settings.files.kinds: photo is not a kind of file",
     "Fix: use some of animation, audio, file, image"),
    ({"url": "https://cdn.example/{file_id}", "headers": {"Authorization": "Bearer {secrets.token}"}},
     "channels[line-oa].settings.files.headers.Authorization: secret 'token' is not defined",
     "Fix: add secrets: {token: ${ENV_VAR}}"),
    ({"url": "{url}", "headers": {"Authorization": "Bearer {secrets.access_token}"}},
     ("channels[line-oa].settings.files.headers: with url: \"{url}\" a secret in the headers "
      "would go to whatever host a webhook names"), "Fix: fetch {url} without secrets"),
    ({"url": "{url}", "_verify": {"kind": "none", "reason": "a test platform"}},
     ("channels[line-oa].settings.files.url: files: url: \"{url}\" fetches the address an "
      "unsigned request names"), "Fix: verify the webhooks"),
]


@pytest.mark.parametrize(("files", "says", "fix"), FILES_MISTAKES)
def test_files_mistakes_name_channel_key_and_fix(tmp_path, monkeypatch, files, says, fix):
    monkeypatch.setenv("LINE_CHANNEL_SECRET", line_api.CHANNEL_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", line_api.ACCESS_TOKEN)
    (line,) = yaml.safe_load(line_channel_yaml())
    files = dict(files)
    if "_verify" in files:
        line["settings"]["verify"] = files.pop("_verify")
    line["settings"]["files"] = files
    text = yaml.safe_dump([line], allow_unicode=True, sort_keys=False)
    text = "".join("  " + row + "\n" for row in text.splitlines())
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "t.yaml", extra=text)))
    assert says in str(err.value)
    assert fix in str(err.value)
    assert line_api.ACCESS_TOKEN not in str(err.value)


def test_config_check_shows_the_mapping_mistake(tmp_path):
    from tongdai.core.cli import main

    bad = bz.channel_yaml("http://127.0.0.1:9").replace("list: deliveries", "list: deliveries[")
    path = write_config(tmp_path / "t.yaml", extra=bad)
    out = CliRunner().invoke(main, ["config", "check", "--file", str(path)])
    assert out.exit_code == 2
    assert "channels[bazaar].settings.events.list: 'deliveries[' is not a valid JMESPath" \
        in out.output


def test_no_verification_must_be_stated_with_a_reason(tmp_path, caplog):
    unsigned = bz.channel_yaml("http://127.0.0.1:9").replace(
        "        kind: hmac\n", "        kind: none\n").replace(
        "        header: X-Bazaar-Signature\n", "")
    unsigned = "\n".join(r for r in unsigned.splitlines()
                         if not r.startswith(("        algorithm", "        encoding",
                                              "        prefix", "        secret: signing",
                                              "        signed")))
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(write_config(tmp_path / "t.yaml", extra=unsigned)))
    assert "channels[bazaar].settings.verify.none.reason: Field required" in str(err.value)
    stated = unsigned.replace("        kind: none", "        kind: none\n        reason: "
                              "private network, behind the office VPN")
    cfg = load_config(str(write_config(tmp_path / "t.yaml", extra=stated)))
    cls, s = cfg.channel_settings["bazaar"]
    with caplog.at_level("WARNING"):
        cls("bazaar", s).verify({}, b"{}")  # nothing to check, by the admin's word
    assert "channel bazaar accepts unsigned webhook requests (verify: none, reason: private " \
        "network, behind the office VPN)" in caplog.text


# -- verification -----------------------------------------------------------------------------
def test_line_signature_is_base64_hmac_sha256_of_the_body():
    a = line_adapter()
    body = (FIXTURES / "line" / "01_text_vietnamese.json").read_bytes()
    sig = base64.b64encode(hmac.new(line_api.CHANNEL_SECRET.encode(), body,
                                    hashlib.sha256).digest()).decode()
    a.verify({"X-Line-Signature": sig}, body)  # header names in any case
    with pytest.raises(SignatureError, match="x-line-signature does not match"):
        a.verify({"x-line-signature": sig}, body + b" ")
    with pytest.raises(SignatureError, match="no x-line-signature header"):
        a.verify({}, body)


def test_shared_token_header():
    text = bz.channel_yaml("http://127.0.0.1:9")
    start, end = text.index("      verify:"), text.index("      events:")
    text = text[:start] + ("      verify:\n        kind: token\n        header: Authorization\n"
                           "        prefix: \"Bearer \"\n        secret: signing\n") + text[end:]
    a = WebhookAdapter("bazaar", settings(text))
    a.verify({"authorization": f"Bearer {bz.SIGNING_SECRET}"}, b"{}")
    for bad in ({"authorization": bz.SIGNING_SECRET}, {"authorization": "Bearer nope"}, {}):
        with pytest.raises(SignatureError, match="Authorization is missing or does not match"):
            a.verify(bad, b"{}")


# -- reading LINE's payloads ------------------------------------------------------------------
def test_line_payloads_read_by_the_shipped_mapping():
    a = line_adapter()
    (text,) = parse(a, "01_text_vietnamese.json")
    assert (text.kind, text.dedupe_key, text.external_user_id, text.platform_ts_ms) == (
        EventKind.MESSAGE, "m:531029384756120145", "U4af4980629b2d1c6e8f0a3b5c7d9e1f2",
        1764842400123)
    (group,) = parse(a, "07_group_text_chinese.json")
    assert group.address == "Ca56f94637cc4347f90a25382909b24b9"  # replies go to the group
    assert group.reply_to == "m:531029384756120145"
    (sticker,) = parse(a, "05_sticker.json")
    assert sticker.attachments[0].kind == "sticker" and sticker.attachments[0].file_id == \
        "52002734" and sticker.attachments[0].meta == {"package": "11537"}
    (image,) = parse(a, "04_image.json")
    assert image.attachments[0].kind == "image" and image.text is None
    (unsend,) = parse(a, "03_unsend.json")
    assert unsend.kind == EventKind.EDIT and unsend.target_ids == ["m:531029384756120145"]
    assert [e.kind for f in ("02_follow.json", "08_unfollow.json", "06_postback.json")
            for e in parse(a, f)] == [EventKind.FOLLOW, EventKind.UNFOLLOW, EventKind.POSTBACK]
    (postback,) = parse(a, "06_postback.json")
    assert postback.payload == "action=order_status&orderId=HD-20451"


def test_line_kinds_ignored_unknown_and_standby():
    a = line_adapter()
    body = (b'{"destination":"U1","events":[{"type":"join","mode":"active","timestamp":1,'
            b'"source":{"type":"group","groupId":"C1"},"webhookEventId":"01A"},'
            b'{"type":"message","mode":"standby","timestamp":1,"source":{"type":"user",'
            b'"userId":"U2"},"webhookEventId":"01B","message":{"id":"5","type":"text",'
            b'"text":"x"}},{"type":"undefined","mode":"active","timestamp":1,"source":'
            b'{"type":"user","userId":"U3"},"webhookEventId":"01C"}]}')
    (unknown,) = a.parse(RawEvent("line-oa", body, {}, 7))
    assert unknown.kind == EventKind.UNSUPPORTED and unknown.platform_type == "undefined"


# -- expressions ------------------------------------------------------------------------------
EXPRESSIONS = [
    "events", "source.userId", "source.groupId || source.roomId || source.userId",
    "mode == 'standby'", "a.b.c.d", "list[0].id", "list[-1]", "list[5]", ("[message][?type != "
    "'text'].{kind: type, id: id}"), "list[].id", "list[*].n", "nested[]", "!flag", "!zero",
    "n > `1`", "n >= `2`", "s < 'y'", "s > `1`", "flag && n", "zero || `7`", ("join('/', [a.b.c.d, "
    "to_string(n)])"), "length(list)", "t == `true`", "one == `true`", "[flag, zero, n]",
    "list[?n > `1`].n | [0]", "message.text", "@",
]
DOC = {"events": [{"x": 1}], "source": {"userId": "U1", "roomId": ""}, "mode": "standby",
       "a": {"b": {"c": {"d": "deep"}}}, "list": [{"id": "i0", "n": 1}, {"id": "i1", "n": 2}, 3],
       "nested": [[1, 2], 3, [4]], "flag": False, "zero": 0, "n": 2, "s": "x", "t": True,
       "one": 1, "message": {"type": "image", "id": "m1"}}


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_compiled_expressions_mean_what_jmespath_means(expr):
    for doc in (DOC, {}, [], None, {"message": "not an object"}):
        try:
            want = jmespath.search(expr, doc)
        except JMESPathError:  # a function given the wrong type: named, for a dead letter
            with pytest.raises(EvaluationError, match=re.escape(repr(expr))):
                getter(expr)(doc)
            continue
        except TypeError:  # jmespath 1.1 orders text against a number by Python's rules
            want = None  # and crashes; ours gives null, as for other mixed types
        assert getter(expr)(doc) == want, (expr, doc)


# -- sending ----------------------------------------------------------------------------------
def out(key: str = "msg-1", text: str = "Dạ vâng ạ") -> OutboundMessage:
    return OutboundMessage(address="U4af4980629b2d1c6e8f0a3b5c7d9e1f2", text=text,
                           author_kind=AuthorKind.AGENT, idempotency_key=key)


def test_line_push_is_idempotent_by_its_retry_key():
    with line_api.FakeLINEAPI() as fake:
        a = line_adapter(fake.base_url)
        first = a.send(out())
        again = a.send(out())  # the answer was lost, say: the same key is sent again
        assert first.external_id == again.external_id == "600000000000000001"
        assert again.raw["already_sent"] is True and len(fake.pushes) == 1
        assert a.send(out("msg-2")).external_id == "600000000000000002"
        assert a.facts().idempotent_sends and a.facts().reply_window_s is None
        assert [(r.scope, r.count, r.per_seconds) for r in a.facts().rate_limits] == [
            ("channel", 2000, 1.0)]


@pytest.mark.parametrize(("status", "retryable", "code"), [
    (429, True, "rate_limited"), (500, True, "server_error"), (503, True, "server_error"),
    (400, False, "bad_request")])
def test_line_answers_retry_later_or_never(status, retryable, code):
    with line_api.FakeLINEAPI() as fake:
        a = line_adapter(fake.base_url)
        fake.fail_next(status)
        with pytest.raises(DeliveryError) as err:
            a.send(out())
        assert (err.value.retryable, err.value.code) == (retryable, code)
        assert f"LINE send: HTTP {status}" in str(err.value)
        if status == 429:
            assert "rate limit has been exceeded" in str(err.value)  # LINE's words
        assert not fake.pushes


def test_line_wrong_token_is_final_and_says_what_to_check():
    with line_api.FakeLINEAPI(token="another-token") as fake:
        a = line_adapter(fake.base_url)
        with pytest.raises(DeliveryError) as err:
            a.send(out())
    assert not err.value.retryable and err.value.code == "unauthorized"
    assert "check this channel's secrets" in str(err.value)
    assert line_api.ACCESS_TOKEN not in str(err.value)


def test_connection_refused_is_retryable_and_certain():
    a = line_adapter("http://127.0.0.1:9")
    with pytest.raises(DeliveryError) as err:
        a.send(out())
    assert err.value.retryable and not err.value.uncertain and err.value.code == "network"


# -- trying a mapping -------------------------------------------------------------------------
def test_channels_webhook_try_shows_events_and_the_reply_without_sending(tmp_path, monkeypatch):
    from tests.test_webhook_channels_e2e import delivery
    from tongdai.core.cli import main

    monkeypatch.setenv("LINE_CHANNEL_SECRET", line_api.CHANNEL_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", line_api.ACCESS_TOKEN)
    path = write_config(tmp_path / "t.yaml", extra=line_channel_yaml()
                        + bz.channel_yaml("http://127.0.0.1:9"))
    monkeypatch.setenv("TONGDAI_CONFIG", str(path))
    sample = FIXTURES / "line" / "07_group_text_chinese.json"
    out = CliRunner().invoke(main, ["channels", "webhook", "try", "line-oa", str(sample),
                                    "--reply", "Dạ ạ"])
    assert out.exit_code == 0, out.output
    assert "message (message)  key=m:531029723456789012" in out.output
    assert "text: 我想充值，请问怎么操作？" in out.output
    assert "reply: POST https://api.line.me/v2/bot/message/push" in out.output
    assert "Authorization: Bearer <secrets.access_token>" in out.output
    assert '{"to":"Ca56f94637cc4347f90a25382909b24b9","messages":[{"type":"text","text":"Dạ ạ"}]}' \
        in out.output
    assert line_api.ACCESS_TOKEN not in out.output

    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"deliveries": [delivery(1), delivery(2, uid=None)]}))
    out = CliRunner().invoke(main, ["channels", "webhook", "try", "bazaar", str(bad)])
    assert out.exit_code == 1
    assert "1 event(s)" in out.output and "events.customer_id 'author.uid' gave null" in out.output
    out = CliRunner().invoke(main, ["channels", "webhook", "try", "tg-test", str(bad)])
    assert out.exit_code == 2 and "is a telegram channel, not webhook" in out.output


class _Redirecting(LocalHTTPServer):
    """A platform whose file URL answers 302 to ``target`` (another origin, or its own
    ``/final``), and records the headers each request carried."""

    def __init__(self, target: str = "") -> None:
        self.target, self.seen = target, []

    def _handler(self):
        fake = self

        class Handler(FakeHandler):
            def serve(self, body: bytes) -> None:
                fake.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path.startswith("/content/"):
                    where = fake.target or f"{fake.base_url}/final"
                    self.reply(302, b"", headers={"Location": where})
                else:
                    self.reply(200, b"\x89PNG\r\n\x1a\n-file", content_type="image/png")

        return Handler


def _line_with_files(files: dict) -> WebhookAdapter:
    (line,) = yaml.safe_load(line_channel_yaml())
    line["settings"]["files"] = files
    text = yaml.safe_dump([line], allow_unicode=True, sort_keys=False)
    s = settings(text, LINE_CHANNEL_SECRET=line_api.CHANNEL_SECRET,
                 LINE_CHANNEL_ACCESS_TOKEN=line_api.ACCESS_TOKEN, LINE_API_BASE="http://x")
    return WebhookAdapter("line-oa", s)


def test_a_files_token_never_follows_a_redirect_to_another_host():
    """The platform's header goes to the platform: a redirect to a CDN on another origin
    drops it (httpx alone keeps any header but Authorization), one on the same origin keeps
    it; a file id of dots is refused (it would name another API path)."""
    with _Redirecting() as cdn, _Redirecting(target=f"{cdn.base_url}/final") as platform:
        adapter = _line_with_files({"url": platform.base_url + "/content/{file_id}",
                                    "headers": {"X-Api-Key": "{secrets.access_token}"}})
        got = adapter.fetch_file(Attachment("image", file_id="5310"), 2**20)
        assert got.data.endswith(b"-file")
        assert platform.seen[0][1]["x-api-key"] == line_api.ACCESS_TOKEN
        assert cdn.seen and "x-api-key" not in cdn.seen[0][1]
        same = _line_with_files({"url": cdn.base_url + "/content/{file_id}",
                                 "headers": {"X-Api-Key": "{secrets.access_token}"}})
        same.fetch_file(Attachment("image", file_id="5311"), 2**20)
        assert [h.get("x-api-key") for _, h in cdn.seen[1:]] == [line_api.ACCESS_TOKEN] * 2
        with pytest.raises(DeliveryError) as e:
            same.fetch_file(Attachment("image", file_id=".."), 2**20)
        assert not e.value.retryable
        with pytest.raises(DeliveryError) as e:  # not http(s): marked, not retried
            _line_with_files({"url": "{url}"}).fetch_file(
                Attachment("image", url="file:///etc/passwd"), 2**20)
        assert not e.value.retryable and e.value.code == "bad_request"
