-- sync_load.lua: keep the assignee's load set in step with the conversation's status. Run in
-- the same MULTI as a status change (core/store.py set_status), after it, so it sees the
-- status and the assignee of that very moment.
--
-- KEYS[1] the conversation hash   ARGV[1] conversation id
-- Returns 1 when the conversation has an assignee, else 0

local who = redis.call('HGET', KEYS[1], 'assignee')
if not who or who == '' then return 0 end
local lk = string.format("{{USER_LOAD}}", who)
if redis.call('HGET', KEYS[1], 'status') == 'resolved' then
  redis.call('SREM', lk, ARGV[1])
else
  redis.call('SADD', lk, ARGV[1])
end
return 1
