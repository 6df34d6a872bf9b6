"""A signed Telegram update with nothing the hub can mean is answered 200 and dropped as
ignorable, counted, never a dead letter (issue #12)."""

from __future__ import annotations

import orjson
import pytest

from tests.helpers import auth, drain_all, post


@pytest.mark.parametrize("update", [
    {"update_id": 5},
    {"update_id": 6, "message": None},
    {"update_id": 7, "poll": {"id": "1", "question": "?", "options": [], "total_voter_count": 0}},
])
def test_update_without_content_is_ignored_not_dead_lettered(client, hub, admin_token, update):
    assert post(client, orjson.dumps(update)).status_code == 200
    assert drain_all(hub) == {"stored": 0, "duplicates": 0, "updated": 0, "dead": 0}
    assert client.get("/api/v1/deadletters", headers=auth(admin_token)).json["items"] == []
    assert client.get("/api/v1/conversations", headers=auth(admin_token)).json["items"] == []
    assert hub.redis.hget(hub.keys.stats(), "ignored:tg-test") == b"1"


def test_the_same_update_unsigned_is_still_refused(client, hub):
    assert post(client, b'{"update_id": 5}', secret=None).status_code == 401
