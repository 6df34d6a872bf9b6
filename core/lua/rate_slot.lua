-- rate_slot.lua: reserve the next send slot under several rate limits at once (GCRA-style).
-- Each limit keeps the time (ms) at which its next slot is free. The slot granted is the
-- latest of those; every limit then moves on by its interval. The caller waits until it.
--
-- KEYS[i]   one key per limit (core/keys.py Keys.rate)
-- ARGV[1]   now (ms)   ARGV[1+i] interval of limit i (ms) = per_seconds * 1000 / count
-- Returns the number of ms to wait before sending (0 = now)
local now = tonumber(ARGV[1])
local at = now
for i, k in ipairs(KEYS) do
  local t = tonumber(redis.call('GET', k) or '0')
  if t > at then at = t end
end
for i, k in ipairs(KEYS) do
  local interval = tonumber(ARGV[1 + i])
  redis.call('SET', k, at + interval, 'PX', math.ceil(at - now + interval + 1000))
end
return at - now
