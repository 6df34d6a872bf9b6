"""The Redis key schema, pinned: a rename shows up here and in docs/redis-schema.md."""

from tests.helpers import drain_all, post, tg_update  # (imports the workspace, as processes do)
from tongdai.core.keys import Keys
from tongdai.core.pipeline import outbound
from tongdai.core.scripts import lua_templates


def test_key_formats():
    k = Keys("td:")
    assert k.raw(3) == "td:raw:3"
    assert k.ingest_slot(1) == "td:ingest:slot:1"
    assert k.deadletter() == "td:deadletter"
    assert k.users() == "td:users" and k.user("an") == "td:user:an"
    assert k.user_by_telegram() == "td:users:telegram"
    assert k.user_by_email() == "td:users:email"
    assert k.session("ab12") == "td:session:ab12"
    assert k.user_sessions("an") == "td:user:an:sessions"
    assert k.login_failures("user:an") == "td:login:fail:user:an"
    assert k.audit() == "td:audit"
    assert k.seq("message") == "td:seq:message"
    assert k.stats() == "td:stats"
    assert k.identity_index("tg-main") == "td:identity:tg-main"
    assert k.customer("7") == "td:customer:7"
    assert k.customer_identities("7") == "td:customer:7:identities"
    assert k.customer_identifiers("7") == "td:customer:7:identifiers"
    assert k.customer_last_inbound("7") == "td:customer:7:last_in"
    assert k.customer_conversations("7") == "td:customer:7:convs"
    assert k.credentials("zalo-oa") == "td:creds:zalo-oa"
    assert k.credentials_lock("zalo-oa") == "td:creds:zalo-oa:lock"
    assert k.webhook_nonce("mail", "abc") == "td:nonce:mail:abc"
    assert k.imap_cursor("mail") == "td:imap:mail"
    assert k.identifier_holders("phone", "ab12") == "td:identifier:phone:ab12"
    assert k.merge("3") == "td:merge:3"
    assert k.customer_merges("7") == "td:customer:7:merges"
    assert k.suggestion("2:7") == "td:suggestion:2:7"
    assert k.suggestions() == "td:suggestions"
    assert k.customer_suggestions("7") == "td:customer:7:suggestions"
    assert k.link_code("c0de") == "td:linkcode:c0de"
    assert k.subject_ids() == "td:subjects"
    assert k.subject_keys() == "td:subject_keys"
    assert k.subject_erasures() == "td:subject_erasures"
    assert k.erasures() == "td:erasures"
    assert k.backup_last() == "td:backup:last"
    assert k.backup_claim() == "td:backup:running"
    assert k.lookup("topups", "9f3a") == "td:lookup:topups:9f3a"
    assert k.lookup("topups", "9f3a", "fetching") == "td:lookup:topups:9f3a:fetching"
    assert k.lookup("topups", "breaker") == "td:lookup:topups:breaker"
    assert k.conversation_attributes("7") == "td:conv:7:attrs"
    assert k.acknowledgements_due() == "td:ack:due"
    assert k.link_code_quota("tg:5") == "td:linkcode:quota:tg:5"
    assert k.conversation("9") == "td:conv:9"
    assert k.conversation_tags("9") == "td:conv:9:tags"
    assert k.conversation_labels("9") == "td:conv:9:labels"
    assert k.labels_used() == "td:labels"
    assert k.timeline("9") == "td:conv:9:timeline"
    assert k.messages("9") == "td:conv:9:messages"
    assert k.dedupe("tg-main") == "td:dedupe:tg-main"
    assert k.queue("billing") == "td:queue:billing"
    assert k.conversations_by_status("open") == "td:convs:open"
    assert k.feed() == "td:feed"
    assert k.tokens() == "td:tokens"
    assert k.idempotency("alice", "ab12") == "td:idem:alice:ab12"
    assert k.send_lock("42") == "td:send:42:lock"
    assert k.sends_due() == "td:send:due"
    assert k.sends_in_flight("tg-main") == "td:send:inflight:tg-main"
    assert k.sends_parked("tg-main") == "td:send:parked:tg-main"
    assert k.channel_slow("tg-main") == "td:send:slow:tg-main"
    assert k.channels_disabled() == "td:channels:disabled"
    assert k.channel_last_event() == "td:channels:last"
    assert k.channel_counts(2_931_840) == "td:channels:counts:2931840"
    assert k.senders("replies") == "td:send:senders:replies"
    assert k.key_rotation() == "td:keys:rotation"
    assert k.config_processes() == "td:config:processes"
    assert k.config_said("vm1", "0a1b2c") == "td:config:said:vm1:0a1b2c"
    assert k.rate("tg-main:555") == "td:rate:tg-main:555"
    assert k.hooks() == "td:hooks"
    assert k.hook("wh_1a2b") == "td:hooks:sub:wh_1a2b"
    assert k.hook_log("wh_1a2b") == "td:hooks:log:wh_1a2b"
    assert k.hook_delivery("dl_9f") == "td:hooks:delivery:dl_9f"
    assert k.hook_seen("dl_9f") == "td:hooks:seen:dl_9f"
    assert k.hook_lock("dl_9f") == "td:hooks:lock:dl_9f"
    assert k.hooks_due() == "td:hooks:due"
    assert k.mentions("an") == "td:user:an:mentions"
    assert k.snoozes() == "td:snoozes"
    assert k.canned("4") == "td:canned:4"
    assert k.canned_index() == "td:canned"
    assert k.canned_shortcuts() == "td:canned:shortcuts"
    assert k.kb("articles") == "td:kb:articles"
    assert k.kb("version") == "td:kb:version"
    assert k.kb("stats") == "td:kb:stats"
    assert k.kb("done", "7", "12") == "td:kb:done:7:12"
    assert k.survey("conv", "7") == "td:survey:conv:7"
    assert k.survey("stats") == "td:survey:stats"
    assert k.survey("nps") == "td:survey:nps"
    assert k.broadcast("index") == "td:bc:index"
    assert k.broadcast("7") == "td:bc:7"
    assert k.broadcast("7", "list") == "td:bc:7:list"
    assert k.broadcast("7", "rcpt") == "td:bc:7:rcpt"
    assert k.broadcast("7", "lock") == "td:bc:7:lock"
    assert k.user_load("an") == "td:user:an:load"
    assert k.presence() == "td:presence"
    assert k.presence_seen() == "td:presence:seen"
    assert k.team_pointer("support") == "td:team:support:rr"
    assert k.agent_mail_sent("assign:1-0:an") == "td:agentmail:sent:assign:1-0:an"
    assert k.agent_mail_reply("0af3") == "td:agentmail:reply:0af3"
    assert k.push_subscriptions("an") == "td:user:an:push"
    assert k.push("owner", "9f2c") == "td:push:owner:9f2c"
    assert k.push("sent", "an:12:34:9f2c") == "td:push:sent:an:12:34:9f2c"
    assert k.push("retry", "an:12:34:9f2c") == "td:push:retry:an:12:34:9f2c"
    assert k.push("due") == "td:push:due"
    assert k.staff_topics("9") == "td:sg:conv:9"
    assert k.staff_topic("-1001", "5") == "td:sg:topic:-1001:5"
    assert k.staff_topic_claim("-1001", "9") == "td:sg:claim:-1001:9"
    assert k.staff_posted("-1001", "m:42") == "td:sg:posted:-1001:m:42"
    assert k.staff_echoes("9") == "td:sg:echo:9"
    assert k.staff_update("-1001", "77") == "td:sg:done:-1001:77"
    assert k.staff_pause("-1001") == "td:sg:pause:-1001"
    assert k.unread() == "td:unread"
    assert k.sla_due() == "td:sla:due"
    assert k.sla_warn() == "td:sla:warn"
    assert k.sla_resolve() == "td:sla:resolve"
    assert k.sla_action("7", "escalate:1700000000000") == "td:sla:act:7:escalate:1700000000000"
    assert k.sla_stats(493_000) == "td:sla:stats:493000"
    assert k.kpi("h", 493_000, "channel") == "td:kpi:h:493000:channel"
    assert k.kpi("d", "20261204", "tag") == "td:kpi:d:20261204:tag"
    assert k.kpi("conv", "7") == "td:kpi:conv:7"
    assert k.spike("n", 5987983, "tag", "payment") == "td:spike:n:5987983:tag:payment"
    assert k.spike("alert", "sp_1_ab") == "td:spike:alert:sp_1_ab"
    assert k.spike("lock", "channel", "tg-test") == "td:spike:lock:channel:tg-test"


def test_prefix_is_configurable_and_reaches_lua():
    k = Keys("acme:")
    assert k.conversation("1") == "acme:conv:1"
    assert lua_templates(Keys("50%:"))["CONV"] == "50%%:conv:%s"  # string.format-safe


def test_every_key_written_by_an_ingest_matches_the_schema(client, hub):
    """After real traffic, every key in Redis is one the schema documents."""
    import re

    post(client, tg_update(1, 42, 1, "nạp thẻ lỗi"))
    drain_all(hub)
    patterns = [r"td:raw:\d+", r"td:seq:(customer|conversation|message)", r"td:identity:[\w-]+",
                r"td:customer:\d+", r"td:customer:\d+:(identities|last_in|convs)", r"td:conv:\d+",
                r"td:conv:\d+:(tags|timeline|messages)", r"td:dedupe:[\w-]+",
                r"td:queue:\w+", r"td:convs:\w+", r"td:subjects", r"td:subject_keys", r"td:feed",
                r"td:unread", r"td:sla:(due|warn|resolve)",
                r"td:channels:(last|counts:\d+)",
                r"rq:.*"]
    keys = [k.decode() for k in hub.redis.scan_iter("*")]
    assert keys
    stray = [k for k in keys if not any(re.fullmatch(p, k) for p in patterns)]
    assert stray == []


def test_every_key_written_by_a_reply_and_its_retry_matches_the_schema(client, hub):
    """A reply to a platform that cannot be reached (api_base 127.0.0.1:9): sent once,
    scheduled for a retry; every key that leaves is documented."""
    import re

    post(client, tg_update(1, 42, 1, "xin chào"))
    drain_all(hub)
    before = {k.decode() for k in hub.redis.scan_iter("*")}
    msg, _ = outbound.create_reply(hub, "1", "dạ", "alice", "k1", "alice")
    assert outbound.deliver(hub, "1", msg.id).startswith("retry 2")
    patterns = [r"td:idem:alice:[0-9a-f]{32}", r"td:rate:tg-test(:\d+)?", r"td:send:due",
                r"td:send:(inflight|slow|parked):[\w-]+", r"td:send:senders:(replies|background)",
                r"td:unread", r"td:sla:(due|warn|resolve)", r"td:sla:stats:\d+", r"rq:.*"]
    new = {k.decode() for k in hub.redis.scan_iter("*")} - before
    assert "td:send:due" in new
    assert [k for k in new if not any(re.fullmatch(p, k) for p in patterns)] == []
