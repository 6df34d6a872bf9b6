-- watermark.lua: a delivery or read receipt "up to time T" (Meta's watermark): every earlier
-- outbound message of that channel in the customer's current conversation gets the status.
-- Only messages after the last watermark are looked at, so the cost is O(new messages).
--
-- KEYS: none (customer and conversation are found inside; formats from core/keys.py).
-- ARGV[1] channel id   ARGV[2] external user id   ARGV[3] watermark (ms)
-- ARGV[4] status: delivered | read               ARGV[5] this receipt's dedupe key
-- ARGV[6] now (ms)
-- Returns {0} duplicate | {1, n} n messages changed | {3} no such customer or conversation
local ch, user, wm, status, ukey, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
local dd = string.format("{{DEDUPE}}", ch)
if redis.call('HEXISTS', dd, ukey) == 1 then return {0} end
local cust = redis.call('HGET', string.format("{{IDENTITY}}", ch), user)
if not cust then return {3} end
local conv = redis.call('HGET', string.format("{{CUSTOMER}}", cust), 'conv')
if not conv then return {3} end
local convk = string.format("{{CONV}}", conv)
local field = 'wm:' .. status .. ':' .. ch
local prev = tonumber(redis.call('HGET', convk, field) or '0')
local rank = {queued = 1, sent = 2, delivered = 3, read = 4}
local n = 0
if wm > prev then
  local mk = string.format("{{MESSAGES}}", conv)
  for _, mid in ipairs(redis.call('ZRANGEBYSCORE', string.format("{{TIMELINE}}", conv), '(' .. prev, wm)) do
    local b = redis.call('HGET', mk, mid)
    if b then
      local m = cjson.decode(b)
      if m.d == 'out' and m.c == ch and m.s ~= 'failed' and (rank[m.s or 'queued'] or 0) < rank[status] then
        m.s = status
        redis.call('HSET', mk, mid, cjson.encode(m))
        n = n + 1
      end
    end
  end
  redis.call('HSET', convk, field, wm)
end
redis.call('HSET', dd, ukey, conv)
if n > 0 then
  redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({type = 'message.updated', conversation_id = conv,
    op = 'watermark', status = status, count = n, ts = now}))
end
return {1, n}
