-- split.lua: undo a merge. Everything the merge record lists goes back to the merged customer:
-- identities (and the channel index), identifiers (and who holds them), conversations (also the
-- ones its identities opened since), its name. The pair is remembered as "split", so the same
-- verified identifier never merges them automatically again.
--
-- KEYS: none (formats from core/keys.py).
-- ARGV[1] merge id   ARGV[2] who   ARGV[3] why   ARGV[4] now (ms)
-- Returns {1, source customer} | {0, reason}

local mid, actor, why, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local mk = string.format("{{MERGE}}", mid)
local m = {}
local flat = redis.call('HGETALL', mk)
for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
if not m.target then return {0, 'no merge ' .. mid} end
if m.status ~= 'merged' then return {0, 'merge ' .. mid .. ' was split already'} end
local target, source = m.target, m.source
local tk, sk = string.format("{{CUSTOMER}}", target), string.format("{{CUSTOMER}}", source)
local into = redis.call('HGET', tk, 'merged_into')
if into then
  return {0, 'customer ' .. target .. ' was merged into ' .. into .. ' since: split that first'}
end

local function parts(s)
  local out = {}
  for p in string.gmatch(s or '', '[^\30]+') do table.insert(out, p) end
  return out
end

-- identities
local moved = {}
local tid, tlast = string.format("{{CUSTOMER_IDENTITIES}}", target), string.format("{{CUSTOMER_LAST_IN}}", target)
for _, k in ipairs(parts(m.identities)) do
  moved[k] = true
  local ch, user = string.match(k, '^([^|]*)|(.*)$')
  redis.call('HSET', string.format("{{IDENTITY}}", ch), user, source)
  local addr = redis.call('HGET', tid, k)
  if addr then
    redis.call('HSET', string.format("{{CUSTOMER_IDENTITIES}}", source), k, addr)
    redis.call('HDEL', tid, k)
  end
  local last = redis.call('HGET', tlast, k)
  if last then
    redis.call('HSET', string.format("{{CUSTOMER_LAST_IN}}", source), k, last)
    redis.call('HDEL', tlast, k)
  end
end
-- identifiers: the merged customer's come back; the target keeps what it had before
local tif = string.format("{{CUSTOMER_IDENTIFIERS}}", target)
for _, rec in ipairs(parts(m.identifiers)) do
  local f, v, had = string.match(rec, '^([^\29]*)\29([^\29]*)\29(.*)$')
  redis.call('HSET', string.format("{{CUSTOMER_IDENTIFIERS}}", source), f, v)
  local kind, idx = string.match(f, '^([^:]*):(.*)$')
  local hk = string.format("{{IDENTIFIER_HOLDERS}}", kind, idx)
  redis.call('HSET', hk, source, string.sub(v, 1, 1))
  if had == '' then
    redis.call('HDEL', tif, f)
    redis.call('HDEL', hk, target)
  else
    redis.call('HSET', tif, f, had)
    redis.call('HSET', hk, target, string.sub(had, 1, 1))
  end
end
-- conversations: the ones that moved, and the ones its identities opened since the merge
local listed = {}
for _, c in ipairs(parts(m.conversations)) do listed[c] = true end
local tconvs = string.format("{{CUSTOMER_CONVS}}", target)
local back, latest, latest_at = {}, nil, -1
local convs = redis.call('ZRANGE', tconvs, 0, -1, 'WITHSCORES')
for i = 1, #convs, 2 do
  local c = convs[i]
  local ckey = string.format("{{CONV}}", c)
  local opener = redis.call('HGET', ckey, 'identity')
  if listed[c] or (tonumber(convs[i + 1]) >= tonumber(m.at) and opener and moved[opener]) then
    redis.call('HSET', ckey, 'customer', source)
    redis.call('ZADD', string.format("{{CUSTOMER_CONVS}}", source), convs[i + 1], c)
    redis.call('ZREM', tconvs, c)
    back[c] = true
    local u = tonumber(redis.call('HGET', ckey, 'updated') or '0')
    if u > latest_at then latest, latest_at = c, u end
  end
end
if latest then redis.call('HSET', sk, 'conv', latest) end
-- messages its identities wrote into the target's conversations while merged go with it
-- (into its current conversation); message ids stay, so links to them keep working
if latest then
  local dmk, dtk = string.format("{{MESSAGES}}", latest), string.format("{{TIMELINE}}", latest)
  for _, c in ipairs(redis.call('ZRANGE', tconvs, 0, -1)) do
    local ckey = string.format("{{CONV}}", c)
    if tonumber(redis.call('HGET', ckey, 'updated') or '0') >= tonumber(m.at) then
      local mk, tl = string.format("{{MESSAGES}}", c), string.format("{{TIMELINE}}", c)
      local all = redis.call('HGETALL', mk)
      for i = 1, #all, 2 do
        local msg = cjson.decode(all[i + 1])
        if msg.u and moved[msg.u] and tonumber(msg.r or 0) >= tonumber(m.at) then
          local score = redis.call('ZSCORE', tl, all[i])
          redis.call('HDEL', mk, all[i])
          redis.call('ZREM', tl, all[i])
          redis.call('HSET', dmk, all[i], all[i + 1])
          redis.call('ZADD', dtk, score or msg.t, all[i])
        end
      end
    end
  end
end
local tconv = redis.call('HGET', tk, 'conv')
if tconv and back[tconv] then
  local keep = m.target_conv
  if keep == '' or back[keep] then
    local rest = redis.call('ZREVRANGE', tconvs, 0, 0)
    keep = rest[1]
  end
  if keep then redis.call('HSET', tk, 'conv', keep) else redis.call('HDEL', tk, 'conv') end
end
if m.name_moved == '1' and redis.call('HGET', tk, 'name') == redis.call('HGET', sk, 'name') then
  redis.call('HDEL', tk, 'name')
end
redis.call('HDEL', sk, 'merged_into', 'merge')
redis.call('HSET', mk, 'status', 'split', 'split_by', actor, 'split_why', why, 'split_at', now)
-- remembered: the same evidence suggests them again, but never merges them by itself
local a, b = target, source
if tonumber(a) > tonumber(b) then a, b = b, a end
local sugk = string.format("{{SUGGESTION}}", a .. ':' .. b)
redis.call('HSET', sugk, 'a', a, 'b', b, 'status', 'split', 'updated', now)
redis.call('HSETNX', sugk, 'created', now)
redis.call('ZADD', string.format("{{CUSTOMER_MERGES}}", target), now, mid)
redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({type = 'customer.split', merge_id = mid,
  customer_id = target, restored_customer_id = source, ts = now}))
return {1, source}
