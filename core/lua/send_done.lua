-- send_done.lua: a send's call to its channel ended (see send_gate.lua).
-- ARGV[3] "slow": it timed out; the channel is marked slow for ARGV[4] ms and nobody is woken
-- (a parked send becomes the next call when its park time is up). "ok": the platform answered
-- (a success or an error answer): the mark goes. "ok" and "none" (no answer, e.g. a refused
-- connection, or no call made) wake the oldest parked sends, as many as there is room for.
--
-- KEYS[1] the channel's calls in flight   KEYS[2] its slow mark   KEYS[3] its parked sends
-- KEYS[4] the due set   KEYS[5] the lane's live senders
-- ARGV[1] now (ms)   ARGV[2] message id   ARGV[3] outcome ok | slow | none
-- ARGV[4] how long the slow mark lasts without an answer (ms)   ARGV[5] a sender seen since is live
-- Returns the number of parked sends woken
redis.call('ZREM', KEYS[1], ARGV[2])
if ARGV[3] == 'slow' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
  return 0
end
if ARGV[3] == 'ok' then
  redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local room = math.max(1, redis.call('ZCOUNT', KEYS[5], ARGV[5], '+inf') - 1)
room = room - redis.call('ZCARD', KEYS[1])
local woken = 0
while room > 0 do
  local oldest = redis.call('ZPOPMIN', KEYS[3])
  if #oldest == 0 then break end
  -- only sends still waiting: one that ran meanwhile has left the due set
  if redis.call('ZSCORE', KEYS[4], oldest[1]) then
    redis.call('ZADD', KEYS[4], ARGV[1], oldest[1])
    woken = woken + 1
    room = room - 1
  end
end
return woken
