-- create_note.lua: add a private note (direction "internal") to a timeline once per
-- idempotency key, with its feed event and the mentioned users' mention entries, atomically.
-- Never an outbound message: no send job, no "message.created" (which reactors read as a
-- message of the conversation with the customer, e.g. for response times).
--
-- KEYS[1] idempotency key          KEYS[2] the conversation's messages hash
-- KEYS[3] its timeline              KEYS[4] the conversation hash
-- KEYS[5..] the mention sets of the mentioned users
-- ARGV[1] message blob (JSON, without ids)   ARGV[2] timeline score (ms)   ARGV[3] now (ms)
-- ARGV[4] idempotency key lifetime (s)       ARGV[5] message id sequence key
-- ARGV[6] the feed event: a JSON object without its opening "{" (the message id goes first)
-- ARGV[7] conversation id                     ARGV[8] a mention set keeps this many (newest)
-- Returns {0, msg} the key was already used (the earlier note) | {1, msg} created
--         | {2, ""} no such conversation

local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {2, ''} end
local mid = tostring(redis.call('INCR', ARGV[5]))
redis.call('HSET', KEYS[2], mid, ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), mid)
redis.call('HSET', KEYS[4], 'updated', ARGV[3])
redis.call('SET', KEYS[1], mid, 'EX', tonumber(ARGV[4]))
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], tonumber(ARGV[3]), ARGV[7] .. ':' .. mid)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(tonumber(ARGV[8]) + 1))
end
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e',
           '{"message_id":"' .. mid .. '",' .. ARGV[6])
return {1, mid}
