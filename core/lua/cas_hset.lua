-- cas_hset.lua: set a hash field only if it still holds the value we read (compare-and-set),
-- so a background re-encryption never overwrites a concurrent update.
-- KEYS[1] hash   ARGV[1] field   ARGV[2] expected value   ARGV[3] new value
-- Returns 1 set | 0 changed meanwhile (the caller reads again)
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
