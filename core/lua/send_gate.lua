-- send_gate.lua: may a send call its channel now? No channel ever holds every sender.
-- A channel takes at most (live senders of the lane - 1, at least 1) calls at once, and only
-- one while it is slow: while its slow mark lives (a call timed out; send_done.lua sets it and
-- an answer clears it) or while one of its calls has run longer than ARGV[3]. A send that
-- finds no room is parked instead: due again in ARGV[6] ms (then it may become the one call),
-- and on the channel's parked list, whose oldest entries a call's end wakes at once
-- (send_done.lua). So a platform that stops answering holds one sender, never all of them.
--
-- KEYS[1] the channel's calls in flight (zset: message id -> start ms)
-- KEYS[2] the channel's slow mark (string, TTL)
-- KEYS[3] the channel's parked sends (zset: due-set member -> parked at ms)
-- KEYS[4] the due set (zset: member -> due ms)
-- KEYS[5] the lane's live senders (zset: sender -> last seen ms)
-- ARGV[1] now (ms)   ARGV[2] message id   ARGV[3] slow after (ms)
-- ARGV[4] lease (ms): an entry in flight for longer belonged to a sender that died
-- ARGV[5] this send's due-set member   ARGV[6] park (ms)   ARGV[7] a sender seen since is live
-- Returns 0 go (the call is registered in flight) | 1 parked
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
redis.call('ZREM', KEYS[1], ARGV[2])
local busy = redis.call('ZCARD', KEYS[1])
if busy > 0 then
  local room = math.max(1, redis.call('ZCOUNT', KEYS[5], ARGV[7], '+inf') - 1)
  local full = busy >= room or redis.call('EXISTS', KEYS[2]) == 1
  if not full then
    full = #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 1) > 0
  end
  if full then
    redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[5])
    redis.call('ZADD', KEYS[3], now, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], 86400000)
    return 1
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
