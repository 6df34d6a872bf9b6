"""The example third-party package (examples/tongdai-adapter-minichat), installed and found
through its ``tongdai.adapters`` entry point: its own contract tests pass, and a channel that
names it by that name carries a signed webhook to a conversation and an agent's reply to its
platform."""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points

import pytest

from tests.conftest import write_config
from tests.fakes.minichat_api import API_KEY, SIGNING_SECRET, FakeMiniChatAPI
from tests.helpers import auth, drain_all, run_outbound


@pytest.fixture
def minichat():
    with FakeMiniChatAPI() as fake:
        yield fake


@pytest.fixture
def config_file(tmp_path, minichat_installed, minichat):
    return write_config(tmp_path / "tongdai.yaml", extra=f"""
  - id: shop-widget
    adapter: minichat
    settings:
      api_key: {API_KEY}
      signing_secret: {SIGNING_SECRET}
      api_base: {minichat.base_url}
""")


def test_the_entry_point_is_what_names_it(minichat_installed):
    from tongdai.core.registry import BUILTIN, resolve_adapter

    (ep,) = [e for e in entry_points(group="tongdai.adapters") if e.name == "minichat"]
    assert ep.value == "tongdai_minichat:MinichatAdapter" and "minichat" not in BUILTIN
    assert resolve_adapter("minichat").__module__ == "tongdai_minichat.adapter"


def test_the_packages_own_tests_pass(minichat_installed):
    from tests.kit.conftest import EXAMPLE

    spec = importlib.util.spec_from_file_location(
        "minichat_contract_tests", EXAMPLE / "tests" / "test_contract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_minichat_keeps_the_adapter_contract()
    module.test_a_stale_signature_is_a_replay()


def test_a_signed_webhook_becomes_a_conversation_and_the_reply_reaches_minichat(
        client, hub, admin_token, minichat):
    adapter = hub.adapter("shop-widget")
    headers, body = adapter.simulate("Shop ơi, nạp thẻ 100k chưa nhận được xu", "v_42", "Lan")
    assert client.post("/webhooks/shop-widget", data=body, headers=headers).status_code == 200
    tampered = body.replace(b"100k", b"900k")
    assert client.post("/webhooks/shop-widget", data=tampered,
                       headers=headers).status_code == 401
    assert client.post("/webhooks/shop-widget", data=body, headers=headers).status_code == 200
    drain_all(hub)
    (conv,) = client.get("/api/v1/conversations?queue=billing",
                         headers=auth(admin_token)).json["items"]
    assert conv["channel_id"] == "shop-widget" and "payment" in conv["tags"]
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages",
                      headers=auth(admin_token)).json["items"]
    assert [m["text"] for m in msgs] == ["Shop ơi, nạp thẻ 100k chưa nhận được xu"]  # once

    r = client.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Dạ shop "
                    "kiểm tra ngay ạ"}, headers={**auth(admin_token), "Idempotency-Key": "m1"})
    assert r.status_code == 201
    run_outbound(hub)
    assert minichat.messages == [("v_42", "Dạ shop kiểm tra ngay ạ")]
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages",
                      headers=auth(admin_token)).json["items"]
    (out,) = [m for m in msgs if m["direction"] == "out"]
    assert out["status"] == "sent" and out["external_id"] == "msg_1"
