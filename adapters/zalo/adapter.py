"""The Zalo adapter itself: one Official Account through the OA OpenAPI v3 and OAuth v4.
Reading events and checking signatures are delegated to their modules; sending, profiles and
the token rotation live here."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx
import orjson

from tongdai.adapters.base import (
    FILE_KINDS,
    Adapter,
    ChannelFacts,
    ChannelSettings,
    FetchedFile,
    FileRefusal,
    OutboundMessage,
    RateLimit,
    Receipt,
    download,
    transport_error,
)
from tongdai.adapters.zalo.answers import TOKEN_ERRORS, _api_error, _json
from tongdai.adapters.zalo.events import _load, parse_event
from tongdai.adapters.zalo.fields import JSON, _int, _pick
from tongdai.adapters.zalo.outbound import (
    ANON_PATH,
    ANON_PREFIX,
    CS_PATH,
    UPLOAD,
    _anonymous,
    _plan,
    upload_path,
    upload_refusal,
    uploaded_part,
)
from tongdai.adapters.zalo.settings import ZaloSettings
from tongdai.adapters.zalo.signatures import SIGNATURE_HEADER, signature, verify_signature
from tongdai.core.errors import DeliveryError, WindowClosed
from tongdai.core.models import Attachment, InboundEvent, RawEvent

PROFILE_PATH = "/v3.0/oa/user/detail"
TOKEN_PATH = "/v4/oa/access_token"
OA_INFO_PATH = "/v2.0/oa/getoa"  # the OA's id, name, avatar (OA API "Lấy thông tin OA")
REFRESH_TOKEN_LIFE_S = 90 * 86400  # Zalo: a refresh token lasts 3 months, used once


class ZaloAdapter(Adapter):
    """One Zalo Official Account, through the OA OpenAPI v3 and OAuth v4."""

    name: ClassVar[str] = "zalo"
    native_buttons: ClassVar[bool] = True
    Settings: ClassVar[type[ChannelSettings]] = ZaloSettings
    # ZNS events add ``X-ZEvent-Server: ZNS``; retries add ``num_retry``. Neither is secret.
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type", "x-zevent-server", "num_retry")
    settings: ZaloSettings

    # -- inbound ------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check ``X-ZEvent-Signature`` (plain SHA-256 of id + body + timestamp + key)."""
        verify_signature(self.settings, headers, body)

    def check_body(self, body: bytes) -> None:
        """Reject bodies that are not a JSON object naming an ``event_name``."""
        _load(body)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """One webhook request is one Zalo event: one normalised event out."""
        return parse_event(raw, self.settings.oa_id)

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        """A consultation message: text, images by URL, other files as links in the text.
        An ``anon:`` address goes to the anonymous-user endpoint, the same way."""
        self._check_window(message)
        parts = _plan(message)
        for part in parts:  # uploads first: nothing is sent when one is refused
            if (att := part.pop(UPLOAD, None)) is not None:
                part.update(self._upload(att))
        if message.address.startswith(ANON_PREFIX):
            recipient, path, what = _anonymous(message.address), ANON_PATH, "anonymous message"
        else:
            recipient, path, what = {"user_id": message.address}, CS_PATH, "message/cs"
        ids: list[str] = []
        quota: Any = None
        sent_ms = time.time_ns() // 1_000_000
        for part in parts:
            body = {"recipient": recipient, "message": part}
            try:
                data = self._call("POST", path, what, json=body)
            except DeliveryError as exc:
                if not ids:
                    raise
                # Retrying would send the earlier parts twice: fail and say what went out.
                raise DeliveryError(
                    f"{exc} (after {len(ids)} of {len(parts)} parts were sent; "
                    "not retried, to avoid duplicates)",
                    retryable=False,
                    code=exc.code,
                    uncertain=exc.uncertain,
                ) from None
            if not data.get("message_id"):
                raise DeliveryError(
                    f"zalo {what}: Zalo accepted the message but returned no message_id",
                    retryable=False,
                    code="bad_response",
                )
            if not ids:
                sent_ms = _int(data.get("sent_time")) or sent_ms
            ids.append(str(data["message_id"]))
            quota = data.get("quota", quota)
        raw: JSON = {**recipient, "message_ids": ids}
        if quota is not None:  # Zalo's count of free replies left, worth seeing in the log
            raw["quota"] = quota
        return Receipt(ids[0], sent_ms, raw)

    def _upload(self, att: Attachment) -> JSON:
        """Upload an agent's file to Zalo; the message part that sends it."""
        path = upload_path(att)
        data = self._call("POST", path, f"upload {path.rsplit('/', 1)[-1]}", files={
            "file": (att.name or "file", att.data, att.mime or "application/octet-stream")})
        return uploaded_part(path, att.kind, data)

    def fetch_file(self, att: Attachment, max_bytes: int) -> FetchedFile | None:
        """A file a customer sent, from the URL in the webhook (Zalo's CDN)."""
        if att.kind not in FILE_KINDS or not att.url:
            return None
        return download(self.http, att.url, max_bytes, "zalo attachment download")

    def file_refusal(self, kind: str, mime: str, size: int) -> FileRefusal | None:
        """JPG/PNG images up to 1 MB, GIFs up to 5 MB, PDF/DOC/DOCX files up to 5 MB only."""
        return upload_refusal(self.name, kind, mime, size)

    def sent_dedupe_keys(self, message: OutboundMessage, receipt: Receipt) -> list[str]:
        """Zalo echoes our sends as ``oa_send_*`` and receipts name them: ``m:<msg_id>``."""
        ids = receipt.raw.get("message_ids") or [receipt.external_id]
        return [f"m:{i}" for i in ids]

    @property
    def account_id(self) -> str | None:
        """The OA: an app linked to several OAs posts all their events to one webhook URL."""
        return self.settings.oa_id

    def _check_window(self, message: OutboundMessage) -> None:
        """Refuse before calling Zalo when the configured window has passed (the core checks
        ``window()`` before queuing; a message can wait in the queue past the deadline)."""
        if message.last_inbound_ts_ms is None:
            return
        state = self.window(
            message.last_inbound_ts_ms, time.time_ns() // 1_000_000, message.author_kind
        )
        if not state.open:
            raise WindowClosed(
                f"zalo: {state.reason}; not sent (reply_window_hours in the channel settings)"
            )

    def fetch_profile(self, external_user_id: str) -> dict[str, Any] | None:
        """``display_name`` and ``avatar`` from ``/v3.0/oa/user/detail``; None on any error."""
        params = {"data": orjson.dumps({"user_id": external_user_id}).decode()}
        try:
            data = self._call("GET", PROFILE_PATH, "user/detail", params=params)
        except DeliveryError:
            return None
        profile = _pick(
            {
                "name": data.get("display_name") or data.get("user_alias"),
                "picture": data.get("avatar"),
            }
        )
        return profile or None

    def facts(self) -> ChannelFacts:
        """Free replies for ``reply_window_hours``; 4,000 API calls a minute per app; phones
        shared through Zalo's form are vouched for; retries end within 2 h (kept 24 h)."""
        return ChannelFacts(
            reply_window_s=self.settings.reply_window_hours * 3600,
            human_agent_window_s=None,
            rate_limits=(RateLimit("channel", 4000, 60.0),),
            verifiable_identifiers=frozenset({"phone"}),
            redelivery_horizon_s=86400,
        )

    # -- tokens -------------------------------------------------------------------------------
    def exchange_code(self, code: str, code_verifier: str | None = None) -> dict[str, str]:
        """Trade an OAuth v4 authorization code for the OA's token pair and store it."""
        form = {"code": code, "app_id": self.settings.app_id, "grant_type": "authorization_code"}
        if code_verifier:
            form["code_verifier"] = code_verifier
        fix = (
            "authorization codes are single-use and expire after 10 minutes: have an OA admin "
            "open the app's consent link again, then run `tongdai channels zalo authorize "
            f"{self.channel_id} --code CODE` with the new code"
        )
        pair = self._token_request(form, "exchanging the authorization code", fix, [code])
        self.token_store.save(pair)
        return pair

    def _refresh(self, refresh_token: str) -> dict[str, str]:
        """Rotate the pair (called by the token store, under its lock). The refresh token is
        single-use: after this call only the returned pair is valid."""
        refresh_token = refresh_token or self.settings.refresh_token.get_secret_value()
        form = {
            "refresh_token": refresh_token,
            "app_id": self.settings.app_id,
            "grant_type": "refresh_token",
        }
        fix = (
            "the refresh token is used up or expired (they are single-use and last 3 months); "
            "an OA admin must authorize the app again: open the app's consent link, then run "
            f"`tongdai channels zalo authorize {self.channel_id} --code CODE`"
        )
        return self._token_request(form, "refreshing the access token", fix, [refresh_token])

    def _token_request(
        self, form: dict[str, str], what: str, fix: str, extra_secrets: list[str]
    ) -> dict[str, str]:
        headers = {"secret_key": self.settings.app_secret.get_secret_value()}
        try:
            resp = self.http.post(
                f"{self.settings.oauth_base}{TOKEN_PATH}", data=form, headers=headers
            )
        except httpx.HTTPError as e:
            code = "timeout" if isinstance(e, httpx.TimeoutException) else "network"
            raise DeliveryError(
                f"zalo {what}: {code} ({type(e).__name__})", retryable=True, code=code
            ) from None
        answer = _json(resp)
        if resp.status_code >= 500 or (resp.status_code == 200 and answer is None):
            raise DeliveryError(
                f"zalo {what}: HTTP {resp.status_code} from the OAuth server",
                retryable=True,
                code="server_error",
            )
        answer = answer or {}
        if answer.get("access_token") and answer.get("refresh_token"):
            pair = {
                "access_token": str(answer["access_token"]),
                "refresh_token": str(answer["refresh_token"]),
            }
            if str(answer.get("expires_in", "")).isdigit():  # seconds (Zalo: 90000)
                pair["expires_in"] = str(answer["expires_in"])
            return pair
        scrub = self._scrubber(extra_secrets)
        why = " ".join(
            str(answer.get(k))
            for k in ("error", "error_name", "error_reason", "error_description")
            if answer.get(k)
        )
        why = scrub(why or f"HTTP {resp.status_code}")
        raise DeliveryError(
            f"zalo {what} failed (Zalo: {why}): {fix}", retryable=False, code="unauthorized"
        )

    def _token(self) -> str:
        pair = self.token_store.current() or {}
        return pair.get("access_token") or self.settings.access_token.get_secret_value()

    def _rotate(self, used: str) -> str:
        try:
            pair = self.token_store.rotate(used, self._refresh)  # DeliveryError passes through
        except RuntimeError:  # the store's lock stayed taken (tongdai.core.credentials.RotationBusy)
            raise DeliveryError(
                "zalo: another worker is still rotating the access token",
                retryable=True,
                code="token_rotation",
            ) from None
        if not pair.get("access_token"):
            raise DeliveryError(
                "zalo: the token store returned no access token",
                retryable=False,
                code="unauthorized",
            )
        return pair["access_token"]

    def check_credentials(self) -> list[str]:
        """``tongdai channels check``: the OA's information with the current access token
        (rotated if Zalo refuses it, as a send would); it must be this OA."""
        data = self._call("GET", OA_INFO_PATH, "reading the OA's information")
        if str(data.get("oa_id")) != self.settings.oa_id:
            raise DeliveryError(
                f"zalo getoa: the access token belongs to OA {data.get('oa_id')}, not oa_id "
                f"{self.settings.oa_id}: authorize the app for this OA", retryable=False,
                code="unauthorized")
        return [(f"GET {OA_INFO_PATH} with the access token: OA {data.get('name') or '?'} "
                f"({data['oa_id']})")]

    def token_expiry(self) -> dict[str, int]:
        """When the stored tokens expire (Unix seconds): the access token by Zalo's
        ``expires_in`` at its rotation, the refresh token 3 months after it."""
        pair = self.token_store.current() or {}
        out = {}
        if str(pair.get("access_expires_at", "")).isdigit():
            out["access_token"] = int(pair["access_expires_at"])
        if str(pair.get("rotated_at", "")).isdigit():
            out["refresh_token"] = int(pair["rotated_at"]) + REFRESH_TOKEN_LIFE_S
        return out

    # -- calling the OpenAPI --------------------------------------------------------------------
    def _call(self, method: str, path: str, what: str, **kw: Any) -> JSON:
        """One OpenAPI call; an invalid token is rotated and the call retried once."""
        token = self._token()
        answer = self._request(method, path, what, token, **kw)
        if answer.get("error") in TOKEN_ERRORS:
            token = self._rotate(token)
            answer = self._request(method, path, what, token, **kw)
            if answer.get("error") in TOKEN_ERRORS:
                raise DeliveryError(
                    f"zalo {what}: the access token was rejected again right after a refresh: "
                    "check that app_id/app_secret belong to the app the OA authorized, then run "
                    f"`tongdai channels zalo authorize {self.channel_id} --code CODE`",
                    retryable=False,
                    code="unauthorized",
                )
        if answer.get("error") == 0:
            data = answer.get("data")
            return data if isinstance(data, dict) else {}
        raise _api_error(what, answer, self._scrubber([token]))

    def _request(self, method: str, path: str, what: str, token: str, **kw: Any) -> JSON:
        # The token goes in a header, never the URL: httpx logs URLs.
        try:
            resp = self.http.request(
                method, f"{self.settings.api_base}{path}", headers={"access_token": token}, **kw
            )
        except httpx.HTTPError as e:  # uncertain once the request was written
            raise transport_error(e, f"zalo {what}") from None
        status, answer = resp.status_code, _json(resp)
        if status == 429:
            raise DeliveryError(
                f"zalo {what}: HTTP 429", retryable=True, retry_after=60, code="rate_limited"
            )
        if status >= 500 or (status == 200 and answer is None):  # a proxy's error page
            raise DeliveryError(
                f"zalo {what}: HTTP {status} without a Zalo answer",
                retryable=True,
                code="server_error",
            )
        if status != 200:
            raise DeliveryError(f"zalo {what}: HTTP {status}", retryable=False, code="bad_request")
        if "error" not in answer:
            raise DeliveryError(
                f"zalo {what}: an answer without an error field",
                retryable=True,
                code="server_error",
            )
        return answer

    def _scrubber(self, extra: list[str]) -> Callable[[str], str]:
        s = self.settings
        known = [
            v.get_secret_value()
            for v in (s.access_token, s.refresh_token, s.app_secret, s.oa_secret_key)
        ]
        known += list((self.token_store.current() or {}).values()) + extra

        def scrub(text: str) -> str:
            for secret in known:
                if secret and len(secret) >= 6:
                    text = text.replace(secret, "<secret>")
            return text

        return scrub

    # -- for newcomers and tests ----------------------------------------------------------------
    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        """A signed ``user_send_text`` as Zalo would POST it. Zalo events carry no names
        (``fetch_profile`` finds them), so ``name`` is not in the body."""
        now_ns = time.time_ns()
        event = {
            "app_id": self.settings.app_id,
            "sender": {"id": str(user_id)},
            "recipient": {"id": self.settings.oa_id},
            "event_name": "user_send_text",
            "message": {"text": text, "msg_id": f"{now_ns:x}"[-20:].rjust(20, "0")},
            "timestamp": str(now_ns // 1_000_000),
        }
        body = orjson.dumps(event)
        s = self.settings
        mac = signature(s, body, event["timestamp"], s.signature_id, s.signature_key)
        return {SIGNATURE_HEADER: f"mac={mac}", "Content-Type": "application/json"}, body
