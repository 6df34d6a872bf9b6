-- inbox_filter.lua: which of these conversations pass the inbox's filters and the caller's
-- access — the rules of core/workspace/inbox_index.py's _matches, read inside Redis, so a list
-- or a search looks at hundreds of conversations in one round trip instead of loading each.
--
-- KEYS: none (conversation hashes and tag sets; formats from core/keys.py).
-- ARGV[1] status   ARGV[2] queue ("" any)   ARGV[3] channel ("" any)   ARGV[4] tag ("" any)
-- ARGV[5] priority_min ("" any)   ARGV[6] assignee ("*" anyone, "" nobody, else a name)
-- ARGV[7] sla ("" | due | breached)   ARGV[8] now (ms)
-- ARGV[9] visible queues joined by "\31" ("*": all)   ARGV[10] the caller's name
-- ARGV[11] since (ms, "" none: updated at or after)   ARGV[12] until (ms, "" none: created
-- at or before)   ARGV[13..] conversation ids
-- Returns the ids that pass, in the order given.
local status, queue, channel, tag = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local prio, assignee, sla, now = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local who, since, till = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local visible = nil
if ARGV[9] ~= '*' then
  visible = {}
  for q in string.gmatch(ARGV[9], '[^\31]+') do visible[q] = true end
end
local out = {}
for i = 13, #ARGV do
  local id = ARGV[i]
  local h = redis.call('HMGET', string.format("{{CONV}}", id), 'customer', 'channel', 'status',
                       'queue', 'created', 'updated', 'assignee', 'priority', 'sla_due')
  local ok = h[1] and h[2] and h[3] and h[4] and h[5] and h[6]
  local mine = h[7] or ''
  if ok and visible and not visible[h[4]] and mine ~= who then ok = false end
  if ok and (h[3] ~= status or (queue ~= '' and h[4] ~= queue)) then ok = false end
  if ok and channel ~= '' and h[2] ~= channel then ok = false end
  if ok and prio and (tonumber(h[8]) or 0) < prio then ok = false end
  if ok and assignee ~= '*' and mine ~= assignee then ok = false end
  if ok and sla ~= '' and (not h[9] or h[9] == '' or (sla == 'breached' and tonumber(h[9]) > now)) then
    ok = false
  end
  if ok and since and tonumber(h[6]) < since then ok = false end
  if ok and till and tonumber(h[5]) > till then ok = false end
  if ok and tag ~= '' and redis.call('SISMEMBER', string.format("{{CONV_TAGS}}", id), tag) == 0 then
    ok = false
  end
  if ok then out[#out + 1] = id end
end
return out
