-- claim.lua: give a conversation to an agent, or back to its queue, and/or move it to another
-- queue: one script, so two agents (or an agent and the auto-assigner) can never both win.
--
-- KEYS[1] the conversation hash   KEYS[2] the audit stream
-- KEYS[3] the team's round-robin pointer (written only when ARGV[9] is '1')
-- ARGV[1] conversation id          ARGV[2] new assignee ('' = back to the queue)
-- ARGV[3] the assignee the caller saw ('' = none): anything else means it changed meanwhile
-- ARGV[4] capacity of the new assignee (0 = no limit) ARGV[5] status needed: '' | active | open
-- ARGV[6] new queue ('' = keep)    ARGV[7] team (for the feed)   ARGV[8] by (actor)
-- ARGV[9] '1': point the round-robin pointer at the new assignee
-- ARGV[10] now (ms)   ARGV[11] reason (claim | assign | auto | offline)   ARGV[12] why
-- ARGV[13] audit MAXLEN   ARGV[14] agent who handed it back, kept so the auto-assigner skips
--          them ('' = forget)
-- ARGV[15] the timeline's system line for this change (core/workspace/timeline.py lua_blob:
--          a message blob without its channel, which is the conversation's), or '' for none
-- Returns {1, previous} done | {2, previous} nothing to change | {0, current} the assignee
--         changed meanwhile | {-1, load} the new assignee is at capacity | {-2, status} the
--         status does not allow it | {-3, ''} no such conversation

local ck = KEYS[1]
local conv, new, seen = ARGV[1], ARGV[2], ARGV[3]
local status = redis.call('HGET', ck, 'status')
if not status then return {-3, ''} end
local cur = redis.call('HGET', ck, 'assignee') or ''
local queue = redis.call('HGET', ck, 'queue')
local target = ARGV[6]
if target == '' then target = queue end

if cur == new and target == queue then return {2, cur} end
if cur ~= seen then return {0, cur} end
local need = ARGV[5]
if (need == 'open' and status ~= 'open') or (need == 'active' and status == 'resolved') then
  return {-2, status}
end
local cap = tonumber(ARGV[4])
if new ~= '' and new ~= cur and cap > 0 then
  local load = redis.call('SCARD', string.format("{{USER_LOAD}}", new))
  if load >= cap then return {-1, tostring(load)} end
end

local now = ARGV[10]
if target ~= queue then
  -- queued (not resolved, not snoozed): the same place in the new queue, priority then age
  if redis.call('ZREM', string.format("{{QUEUE}}", queue), conv) == 1 then
    local prio = tonumber(redis.call('HGET', ck, 'priority') or '0')
    local created = tonumber(redis.call('HGET', ck, 'created'))
    redis.call('ZADD', string.format("{{QUEUE}}", target), (100 - prio) * 1e13 + created, conv)
  end
  redis.call('HSET', ck, 'queue', target)
end
if new ~= cur then
  if cur ~= '' then redis.call('SREM', string.format("{{USER_LOAD}}", cur), conv) end
  if new == '' then
    redis.call('HDEL', ck, 'assignee')
  else
    redis.call('HSET', ck, 'assignee', new)
    if status ~= 'resolved' then redis.call('SADD', string.format("{{USER_LOAD}}", new), conv) end
  end
end
if ARGV[14] ~= '' then
  redis.call('HSET', ck, 'released_by', ARGV[14])
else
  redis.call('HDEL', ck, 'released_by')
end
if ARGV[9] == '1' then redis.call('SET', KEYS[3], new) end
redis.call('HSET', ck, 'updated', now)
if ARGV[15] ~= '' then
  local mid = tostring(redis.call('INCR', "{{SEQ_MESSAGE}}"))
  local ch = redis.call('HGET', ck, 'channel') or ''
  redis.call('HSET', string.format("{{MESSAGES}}", conv), mid,
             '{"c":' .. cjson.encode(ch) .. ',' .. string.sub(ARGV[15], 2))
  redis.call('ZADD', string.format("{{TIMELINE}}", conv), tonumber(now), mid)
end

local assignee = cjson.null
if new ~= '' then assignee = new end
local previous = cjson.null
if cur ~= '' then previous = cur end
local team = cjson.null
if ARGV[7] ~= '' then team = ARGV[7] end
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({
  type = 'conversation.assigned', conversation_id = conv, assignee = assignee, team = team,
  by = ARGV[8], previous = previous, queue = target, reason = ARGV[11], ts = tonumber(now)}))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[13], '*', 'actor', ARGV[8],
  'action', 'conversation.assigned', 'target', conv, 'ts', now,
  'details', cjson.encode({assignee = assignee, previous = previous, team = team,
                           queue = target, reason = ARGV[11], why = ARGV[12]}))
return {1, cur}
