-- create_outbound.lua: add an agent's reply to the timeline as "queued", once per idempotency key.
--
-- KEYS[1] idempotency key   KEYS[2] the conversation's messages hash
-- KEYS[3] its timeline       KEYS[4] the conversation hash
-- ARGV[1] message blob (JSON, without ids)   ARGV[2] timeline score (ms)   ARGV[3] now (ms)
-- ARGV[4] idempotency key lifetime (s)       ARGV[5] message id sequence key
-- ARGV[6] conversation id                     ARGV[7] author (agent) id, for the feed
-- Returns {0, msg} when the key was already used (the earlier message) | {1, msg} created

local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local mid = tostring(redis.call('INCR', ARGV[5]))
redis.call('HSET', KEYS[2], mid, ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), mid)
redis.call('HSET', KEYS[4], 'updated', ARGV[3])
redis.call('SET', KEYS[1], mid, 'EX', tonumber(ARGV[4]))
-- inbox (core/inbox.py, core/sla.py): an agent's reply (not a bot's acknowledgement, not a
-- note) reads the conversation and answers what the customer waited for
local sent = cjson.decode(ARGV[1])
if sent.a == 'agent' and sent.d == 'out' then
  redis.call('ZREM', "{{UNREAD}}", ARGV[6])
  local w = redis.call('HMGET', KEYS[4], 'sla_due', 'sla_breached', 'channel', 'queue',
                       'sla_target')
  if w[1] and w[1] ~= w[2] then
    -- a wait ends: met, or breached before the tick reported it (reported ones were counted)
    local now = tonumber(ARGV[3])
    local sk = string.format("{{SLA_STATS}}", math.floor(now / 3600000))
    redis.call('HINCRBY', sk, table.concat({w[3] or '', w[4] or '', w[5] or 'first_response',
      now <= tonumber(w[1]) and 'met' or 'breached'}, '\31'), 1)
    redis.call('EXPIRE', sk, 400 * 86400)
  end
  redis.call('ZREM', "{{SLA_DUE}}", ARGV[6])
  redis.call('ZREM', "{{SLA_WARN}}", ARGV[6])
  redis.call('HDEL', KEYS[4], 'sla_due', 'sla_breached', 'sla_warn', 'sla_warned', 'sla_policy',
             'sla_target')
  redis.call('HSET', KEYS[4], 'agent_reply', ARGV[3])
end
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({
  type = 'message.created', conversation_id = ARGV[6], message_id = mid, author_id = ARGV[7],
  ts = tonumber(ARGV[3])}))
return {1, mid}
