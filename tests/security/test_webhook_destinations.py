"""Outgoing webhooks never make the hub request a link-local address: 169.254.169.254 is the
cloud metadata service, which hands out the host's credentials."""

from __future__ import annotations

import pytest

from tests.helpers import auth
from tongdai.core.workspace import hookdelivery, hooks


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::ffff:169.254.169.254]/latest",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest",
    "http://0.0.0.0:8080/hook",
])
def test_a_link_local_or_metadata_address_is_refused(client, admin_token, url):
    r = client.post("/api/v1/webhooks", json={"url": url},
                    headers=auth(admin_token, "new"))
    assert r.status_code == 400, r.get_json()
    assert "link-local" in r.get_json()["error"]["message"]
    assert hooks.all_subscriptions(client.application.extensions["tongdai"]) == []


def test_a_name_that_resolves_to_one_is_refused_when_sending(client, hub, admin_token):
    # 2852039166 is 169.254.169.254 written as one number: not an IP literal to the URL
    # check, but the resolver makes it that address
    r = client.post("/api/v1/webhooks", json={"url": "http://2852039166/hook"},
                    headers=auth(admin_token, "new"))
    assert r.status_code == 201
    sub = r.get_json()
    ping = client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    hookdelivery.deliver_due(hub)
    d = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries/{ping.get_json()['id']}",
                   headers=auth(admin_token)).get_json()
    assert d["status"] == "pending" and d["last_status_code"] is None
    assert d["last_error"].startswith("refused: 2852039166 resolves to 169.254.169.254")


def test_the_hubs_own_network_stays_allowed():
    for url in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "https://crm.example/x",
                "http://[::1]:9000/hook"):
        assert hooks.check_url(url) == url
