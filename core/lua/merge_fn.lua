-- merge_fn.lua: the identity graph's shared functions, included by ingest.lua and merge.lua
-- where they say INCLUDE:merge_fn in double braces (Lua scripts cannot call each other).
--
-- merge_customers(target, source, why, actor, now) moves everything of `source` to `target`
-- and writes a merge record listing exactly what moved, so split.lua can put it back.
-- merge_conflict(a, b) says why two customers must not be merged automatically (or nil),
-- then the same as a code and its detail for the console to say in its language.
-- suggest(a, b, field, evidence, now) files a merge suggestion with its evidence for agents.

local function hmap(key)
  local flat = redis.call('HGETALL', key)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end

local function final_customer(c)
  -- a merged customer's identities answer to whoever it was merged into
  for _ = 1, 32 do
    local into = redis.call('HGET', string.format("{{CUSTOMER}}", c), 'merged_into')
    if not into then return c end
    c = into
  end
  return c
end

local function pair_of(a, b)
  if tonumber(a) > tonumber(b) then a, b = b, a end
  return a .. ':' .. b, a, b
end

local function pair_status(a, b)
  return redis.call('HGET', string.format("{{SUGGESTION}}", pair_of(a, b)), 'status')
end

local function suggest(a, b, field, evidence, now)
  if a == b then return end
  local pair, x, y = pair_of(a, b)
  local sk = string.format("{{SUGGESTION}}", pair)
  local status = redis.call('HGET', sk, 'status')
  if not status then
    redis.call('HSET', sk, 'a', x, 'b', y, 'status', 'open', 'created', now)
    status = 'open'
  end
  redis.call('HSET', sk, 'ev:' .. field, evidence, 'updated', now)
  if status == 'open' then
    redis.call('ZADD', "{{SUGGESTIONS}}", now, pair)
    redis.call('SADD', string.format("{{CUSTOMER_SUGGESTIONS}}", x), y)
    redis.call('SADD', string.format("{{CUSTOMER_SUGGESTIONS}}", y), x)
  end
end

local function merge_conflict(a, b)
  local chans = {}
  for k in pairs(hmap(string.format("{{CUSTOMER_IDENTITIES}}", a))) do
    chans[string.match(k, '^([^|]*)|')] = k
  end
  for k in pairs(hmap(string.format("{{CUSTOMER_IDENTITIES}}", b))) do
    local ch = string.match(k, '^([^|]*)|')
    if chans[ch] and chans[ch] ~= k then
      return 'each has an account of their own on ' .. ch, 'own_account', ch
    end
  end
  local verified = {}
  for f, v in pairs(hmap(string.format("{{CUSTOMER_IDENTIFIERS}}", a))) do
    if string.sub(v, 1, 1) == '1' then
      local kind = string.match(f, '^([^:]*):')
      verified[kind] = verified[kind] or {}
      verified[kind][f] = true
    end
  end
  for f, v in pairs(hmap(string.format("{{CUSTOMER_IDENTIFIERS}}", b))) do
    local kind = string.match(f, '^([^:]*):')
    if string.sub(v, 1, 1) == '1' and verified[kind] and not verified[kind][f] then
      return 'each has a different verified ' .. kind, 'different_verified', kind
    end
  end
  return nil
end

local function merge_customers(target, source, why, actor, now)
  local tk, sk = string.format("{{CUSTOMER}}", target), string.format("{{CUSTOMER}}", source)
  local mid = tostring(redis.call('INCR', "{{SEQ_MERGE}}"))
  -- identities: the channel index answers with the target from now on
  local moved_ids = {}
  local last = hmap(string.format("{{CUSTOMER_LAST_IN}}", source))
  for k, addr in pairs(hmap(string.format("{{CUSTOMER_IDENTITIES}}", source))) do
    local ch, user = string.match(k, '^([^|]*)|(.*)$')
    redis.call('HSET', string.format("{{IDENTITY}}", ch), user, target)
    redis.call('HSET', string.format("{{CUSTOMER_IDENTITIES}}", target), k, addr)
    if last[k] then redis.call('HSET', string.format("{{CUSTOMER_LAST_IN}}", target), k, last[k]) end
    table.insert(moved_ids, k)
  end
  redis.call('DEL', string.format("{{CUSTOMER_IDENTITIES}}", source),
             string.format("{{CUSTOMER_LAST_IN}}", source))
  -- identifiers (a verified one wins over a claim of the same value)
  local moved_ifs = {}
  local tif = hmap(string.format("{{CUSTOMER_IDENTIFIERS}}", target))
  for f, v in pairs(hmap(string.format("{{CUSTOMER_IDENTIFIERS}}", source))) do
    local had = tif[f]
    if not had or (string.sub(had, 1, 1) ~= '1' and string.sub(v, 1, 1) == '1') then
      redis.call('HSET', string.format("{{CUSTOMER_IDENTIFIERS}}", target), f, v)
    end
    local kind, idx = string.match(f, '^([^:]*):(.*)$')
    local hk = string.format("{{IDENTIFIER_HOLDERS}}", kind, idx)
    local sv = redis.call('HGET', hk, source) or string.sub(v, 1, 1)
    local tv = redis.call('HGET', hk, target)
    redis.call('HDEL', hk, source)
    if not tv or (tv ~= '1' and sv == '1') then redis.call('HSET', hk, target, sv) end
    table.insert(moved_ifs, f .. '\29' .. v .. '\29' .. (had or ''))
  end
  redis.call('DEL', string.format("{{CUSTOMER_IDENTIFIERS}}", source))
  -- conversations keep their own timelines; the customer now owns them all
  local moved_convs = {}
  local convs = redis.call('ZRANGE', string.format("{{CUSTOMER_CONVS}}", source), 0, -1, 'WITHSCORES')
  for i = 1, #convs, 2 do
    redis.call('HSET', string.format("{{CONV}}", convs[i]), 'customer', target)
    redis.call('ZADD', string.format("{{CUSTOMER_CONVS}}", target), convs[i + 1], convs[i])
    table.insert(moved_convs, convs[i])
  end
  redis.call('DEL', string.format("{{CUSTOMER_CONVS}}", source))
  -- The target's current conversation stays current: the merged identities write there
  -- from now on (one timeline), and a split takes their messages back out of it.
  local tconv, sconv = redis.call('HGET', tk, 'conv'), redis.call('HGET', sk, 'conv')
  if sconv and not tconv then redis.call('HSET', tk, 'conv', sconv) end
  local name_moved = '0'
  local sh = hmap(sk)
  if sh.name and redis.call('HEXISTS', tk, 'name') == 0 then
    redis.call('HSET', tk, 'name', sh.name)
    name_moved = '1'
  end
  for f, v in pairs(sh) do
    if string.sub(f, 1, 8) == 'blocked:' then redis.call('HSET', tk, f, v) end
  end
  -- a customer who answered a broadcast "stop" stays opted out as one person
  if sh.optout then redis.call('HSETNX', tk, 'optout', sh.optout) end
  redis.call('HSET', sk, 'merged_into', target, 'merge', mid)
  local pair = pair_of(target, source)
  local sugk = string.format("{{SUGGESTION}}", pair)
  if redis.call('EXISTS', sugk) == 1 then
    redis.call('HSET', sugk, 'status', 'merged', 'merge', mid)
    redis.call('ZREM', "{{SUGGESTIONS}}", pair)
  end
  redis.call('HSET', string.format("{{MERGE}}", mid), 'target', target, 'source', source,
    'why', why, 'by', actor, 'at', now, 'status', 'merged',
    'identities', table.concat(moved_ids, '\30'), 'identifiers', table.concat(moved_ifs, '\30'),
    'conversations', table.concat(moved_convs, '\30'), 'target_conv', tconv or '',
    'source_conv', sconv or '', 'name_moved', name_moved)
  redis.call('ZADD', string.format("{{CUSTOMER_MERGES}}", target), now, mid)
  redis.call('ZADD', string.format("{{CUSTOMER_MERGES}}", source), now, mid)
  redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({type = 'customer.merged', merge_id = mid,
    customer_id = target, merged_customer_id = source, ts = now}))
  return mid
end
