-- merge.lua: an agent merges two customers (the API's POST /customers/{id}/merge).
--
-- KEYS: none (formats from core/keys.py, like ingest.lua).
-- ARGV[1] target customer (keeps its id)   ARGV[2] source customer (merged into the target)
-- ARGV[3] why   ARGV[4] who (agent name)   ARGV[5] now (ms)
-- Returns {1, merge id} | {0, reason}: unknown customer, the same customer, or one of them
--         already merged into another (merge into that one instead)

local target, source, why, actor, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])

{{INCLUDE:merge_fn}}

for _, c in ipairs({target, source}) do
  local h = string.format("{{CUSTOMER}}", c)
  if redis.call('EXISTS', h) == 0 then return {0, 'no customer ' .. c} end
  local into = redis.call('HGET', h, 'merged_into')
  if into then return {0, 'customer ' .. c .. ' is merged into ' .. into .. ' already'} end
  if redis.call('HEXISTS', h, 'erased') == 1 then return {0, 'customer ' .. c .. ' was erased'} end
end
if target == source then return {0, 'a customer cannot be merged with itself'} end
return {1, merge_customers(target, source, why, actor, now)}
