-- patch_message.lua: change a stored message atomically (edit, reaction, delivery status).
-- The message is found by its location "conv:msg", or through the dedupe index of a channel
-- when the platform names it by its own id. Applying the same patch twice changes nothing.
--
-- KEYS: none (the messages hash depends on the conversation found; formats from core/keys.py).
-- ARGV[1] channel id (for the dedupe index; "" when ARGV[2] is a location)
-- ARGV[2] target: a dedupe key of that channel, or a location "conv:msg" when ARGV[1] is ""
-- ARGV[3] this update's own dedupe key ("" for none)   ARGV[4] now (ms)
-- ARGV[5] op: "edit" | "react" | "status" | "set"
-- ARGV[6] op value: edit -> new text; react -> reactor; status -> new status; set -> JSON object
-- ARGV[7] op extra: edit -> edit ts (ms); react -> emoji ("" removes); status -> reason
-- Returns {0} duplicate update | {1, "conv:msg", blob} patched | {3} target unknown

local ch, target, ukey, now, op, v, extra = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local dd = nil
if ch ~= '' then
  dd = string.format("{{DEDUPE}}", ch)
  if ukey ~= '' and redis.call('HEXISTS', dd, ukey) == 1 then return {0} end
end

local loc = target
if dd then loc = redis.call('HGET', dd, target) end
if not loc or loc == '-' then return {3} end
local conv, mid = string.match(loc, '^([^:]+):(.+)$')
local mk = string.format("{{MESSAGES}}", conv)
local blob = redis.call('HGET', mk, mid)
if not blob then return {3} end
local m = cjson.decode(blob)

-- statuses only move forward (a late "delivered" never hides a "read")
local rank = {queued = 1, uncertain = 1.5, sent = 2, delayed = 2.5, delivered = 3, read = 4, failed = 5}
if op == 'edit' then
  if m.x ~= v then
    local hist = m.hx or {}
    table.insert(hist, m.x or '')
    m.hx = hist
    m.x = v
  end
  m.ed = tonumber(extra)
elseif op == 'react' then
  local re = m.re or {}
  if type(re) ~= 'table' or next(re) == nil then re = {} end
  if extra == '' then re[v] = nil else re[v] = extra end
  m.re = re
  if next(re) == nil then m.re = nil end
elseif op == 'status' then
  local cur = rank[m.s or 'queued'] or 0
  if v == 'failed' or (rank[v] or 0) > cur then
    m.s = v
    if extra ~= '' then m.sr = extra end
  end
elseif op == 'set' then
  for k, val in pairs(cjson.decode(v)) do
    if val == cjson.null then m[k] = nil else m[k] = val end
  end
end
local out = cjson.encode(m)
redis.call('HSET', mk, mid, out)
if dd and ukey ~= '' then redis.call('HSET', dd, ukey, loc) end
redis.call('HSET', string.format("{{CONV}}", conv), 'updated', now)
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({type = 'message.updated', conversation_id = conv,
  message_id = mid, op = op, ts = now}))
return {1, loc, out}
