"""Users and API tokens: who may change what, the last admin, log-in guessing, tokens kept
out of Redis in clear, revoked, and dead with their disabled user."""

from __future__ import annotations

import threading

import pytest
from argon2 import PasswordHasher

from tests.console.conftest import console_csrf, log_in
from tests.helpers import auth
from tests.security.conftest import PASSWORD
from tongdai.core.errors import Unauthorized
from tongdai.core.workspace import audit, tokens, users


def me(client, token: str) -> int:
    return client.get("/api/v1/users/me", headers=auth(token)).status_code


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(client, hub, people):
    root = people["admin"]
    for change in ({"disabled": True}, {"role": "supervisor"}):
        r = client.patch("/api/v1/users/admin", json=change, headers=auth(root))
        assert r.status_code == 409 and "last enabled admin" in r.json["error"]["message"]
    assert users.get(hub, "admin").role == "admin" and not users.get(hub, "admin").disabled
    # with a second admin, the first may step down
    assert client.patch("/api/v1/users/cuong", json={"role": "admin"},
                        headers=auth(root)).status_code == 200
    assert client.patch("/api/v1/users/admin", json={"disabled": True},
                        headers=auth(root)).status_code == 200


def test_null_for_a_field_that_needs_a_value_is_a_400_not_a_crash(client, people):
    for field in ("teams", "display_name", "role", "disabled"):
        r = client.patch("/api/v1/users/an", json={field: None}, headers=auth(people["admin"]))
        assert r.status_code == 400, (field, r.status_code)


def test_a_telegram_account_links_one_user_only(client, hub, people):
    root = people["admin"]
    assert client.patch("/api/v1/users/an", json={"telegram_user_id": 777},
                        headers=auth(root)).status_code == 200
    # linking bich to an's Telegram account would make an's staff-group messages bich's
    r = client.patch("/api/v1/users/bich", json={"telegram_user_id": 777}, headers=auth(root))
    assert r.status_code == 409
    r = client.post("/api/v1/users", json={"name": "dao", "telegram_user_id": 777},
                    headers=auth(root, "new"))
    assert r.status_code == 409
    assert users.by_telegram(hub, 777).name == "an"


def test_a_user_name_with_a_trailing_newline_is_not_a_second_user(client, people):
    r = client.post("/api/v1/users", json={"name": "an\n", "role": "admin"},
                    headers=auth(people["admin"], "new"))
    assert r.status_code == 400


def test_only_a_console_session_changes_its_own_password(client, hub, people):
    change = {"password": "a-new-password-1"}
    # a token named like the user (an integration's, say) is not the person
    assert client.patch("/api/v1/users/an", json=change,
                        headers=auth(people["an"])).status_code == 403
    assert log_in(client, "an", "a-new-password-1").status_code == 401
    log_in(client, "an")
    ok = client.patch("/api/v1/users/an", json=change,
                      headers={"X-CSRF-Token": console_csrf(client)})
    assert ok.status_code == 200
    assert log_in(client, "an", "a-new-password-1").status_code == 303


def test_colleagues_contact_details_are_for_admins(client, hub, people):
    users.update(hub, "bich", {"email": "bich@shop.example", "telegram_user_id": 4242})
    users.update(hub, "an", {"email": "an@shop.example"})

    def listed(token: str) -> dict:
        r = client.get("/api/v1/users", headers=auth(token))
        return {u["name"]: u for u in r.json["items"]}

    as_an = listed(people["an"])
    assert as_an["bich"]["email"] is None and as_an["bich"]["telegram_user_id"] is None
    assert as_an["bich"]["display_name"] == "Bich"  # what pickers and @mentions need
    assert as_an["an"]["email"] == "an@shop.example"  # your own record
    as_admin = listed(people["admin"])
    assert as_admin["bich"]["email"] == "bich@shop.example"
    assert as_admin["bich"]["telegram_user_id"] == 4242


def test_parallel_guesses_get_no_more_password_checks_than_the_limit(hub, people,
                                                                    monkeypatch):
    """Six guesses at once (console.login_attempts: 3): each is counted before its password
    is checked, so three are checked and three are locked out, not six checked."""
    checked, locked, guesses = 0, 0, 6
    cond, release = threading.Condition(), threading.Event()

    class SlowHasher(PasswordHasher):
        def verify(self, stored, password):  # holds every check until all guesses are in
            nonlocal checked
            with cond:
                checked += 1
                cond.notify_all()
            release.wait(10)
            return super().verify(stored, password)

    monkeypatch.setattr(users, "_hasher", SlowHasher(time_cost=1, memory_cost=1024,
                                                     parallelism=1))

    def guess(n: int) -> None:
        nonlocal locked
        try:
            users.authenticate(hub, "bich", f"guess-number-{n}", f"10.0.0.{n}")
        except users.LockedOut:
            with cond:
                locked += 1
                cond.notify_all()
        except Unauthorized:
            pass

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for t in threads:
        t.start()
    with cond:
        cond.wait_for(lambda: checked + locked == guesses, timeout=10)
    release.set()
    for t in threads:
        t.join(10)
    assert (checked, locked) == (3, 3)
    with pytest.raises(users.LockedOut):
        users.authenticate(hub, "bich", PASSWORD, "10.9.9.9")


def test_successful_log_ins_do_not_lock_the_address(hub, people):
    for _ in range(5):  # more than console.login_attempts, all from one address (an office)
        for name in ("an", "cuong"):
            assert users.authenticate(hub, name, PASSWORD, "203.0.113.7").name == name
    with pytest.raises(Unauthorized):
        users.authenticate(hub, "an", "wrong-password", "203.0.113.7")
    assert users.authenticate(hub, "bich", PASSWORD, "203.0.113.7").name == "bich"


def test_a_created_token_is_not_kept_in_clear(client, hub, people):
    headers = auth(people["admin"], "token-for-crm")
    first = client.post("/api/v1/tokens", json={"name": "crm", "role": "agent"},
                        headers=headers)
    assert first.status_code == 201
    token = first.json["token"]
    assert token.startswith("td_") and me(client, token) == 200
    again = client.post("/api/v1/tokens", json={"name": "crm", "role": "agent"},
                        headers=headers)
    assert again.json["token"] == token  # a retry gets the same answer
    for key in hub.redis.scan_iter(count=1000):
        kind = hub.redis.type(key)
        values = ([hub.redis.get(key)] if kind == b"string" else
                  hub.redis.hvals(key) if kind == b"hash" else [])
        assert not any(v and token.encode() in v for v in values), key


def test_token_names_are_user_name_shaped(client, hub, people):
    with pytest.raises(ValueError):
        tokens.create(hub, "an:canned", "agent")
    r = client.post("/api/v1/tokens", json={"name": "Bot\nadmin", "role": "agent"},
                    headers=auth(people["admin"], "new"))
    assert r.status_code == 400


def test_a_disabled_users_tokens_stop_working(client, hub, people):
    assert me(client, people["an"]) == 200
    users.update(hub, "an", {"disabled": True})
    assert me(client, people["an"]) == 401
    users.update(hub, "an", {"disabled": False})
    assert me(client, people["an"]) == 200


def test_an_admin_revokes_tokens(client, hub, people):
    bot = tokens.create(hub, "crm-bot", "agent", ["support"])
    assert me(client, bot) == 200
    r = client.delete("/api/v1/tokens/crm-bot", headers=auth(people["cuong"]))
    assert r.status_code == 403
    r = client.delete("/api/v1/tokens/crm-bot", headers=auth(people["admin"]))
    assert r.status_code == 200 and r.json == {"name": "crm-bot", "revoked": 1}
    assert me(client, bot) == 401
    assert me(client, people["an"]) == 200  # others' tokens stay
    assert client.delete("/api/v1/tokens/crm-bot",
                         headers=auth(people["admin"])).status_code == 404
    (entry,) = audit.entries(hub, action="token.revoked")[0]
    assert entry["actor"] == "admin" and entry["target"] == "crm-bot"
