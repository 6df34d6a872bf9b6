-- presence.lua: change a user's presence (online / away / offline) and say so on the feed.
--
-- KEYS[1] the presence hash (user -> "status|how|since ms")   KEYS[2] last-seen sorted set
-- KEYS[3] the user's hash (nobody else has a presence)
-- ARGV[1] user   ARGV[2] mode   ARGV[3] status   ARGV[4] now (ms)   ARGV[5] expected value
-- Modes: touch   activity: last seen = now; online again unless the user chose away/offline
--        set     the user's own toggle ("manual": activity does not undo away/offline)
--        timeout the scheduler's timing: applies only if the value is still ARGV[5]
-- Returns {1, old status} changed | {0, status} unchanged | {-1, ''} no such user

local user, mode, now = ARGV[1], ARGV[2], ARGV[4]
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1, ''} end
local raw = redis.call('HGET', KEYS[1], user) or ''
local cur, how = string.match(raw, '^([a-z]+)|([a-z]+)|')
cur = cur or 'offline'
how = how or 'auto'

local new, newhow = ARGV[3], 'auto'
if mode == 'touch' then
  redis.call('ZADD', KEYS[2], tonumber(now), user)
  if cur == 'online' or how == 'manual' then return {0, cur} end
  new = 'online'
elseif mode == 'set' then
  redis.call('ZADD', KEYS[2], tonumber(now), user)
  newhow = 'manual'
  if new == 'online' then newhow = 'auto' end
else
  if raw ~= ARGV[5] then return {0, cur} end
end
if new == cur and newhow == how then return {0, cur} end
redis.call('HSET', KEYS[1], user, new .. '|' .. newhow .. '|' .. now)
if new == cur then return {0, cur} end
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({
  type = 'presence.changed', user = user, status = new, ts = tonumber(now)}))
return {1, cur}
