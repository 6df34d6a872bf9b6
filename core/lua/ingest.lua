-- ingest.lua: store one timeline event (message, postback, contact, unsupported, notice)
-- atomically: dedupe -> identity -> conversation (new/reopen) -> message -> route -> publish.
-- Running it twice for the same event is a no-op (the dedupe entry is written with the message),
-- which is what makes at-least-once processing safe.
--
-- KEYS: none. Keys depend on ids found inside (the customer of an identity, the conversation of
--       a customer), so they are built from the formats core/keys.py renders into {{...}}.
--       Single Redis or Sentinel only, not Redis Cluster.
-- ARGV[1]  channel id            ARGV[2]  dedupe key            ARGV[3]  external user id
-- ARGV[4]  reply address         ARGV[5]  customer display name ARGV[6]  platform ts (ms)
-- ARGV[7]  now (ms)              ARGV[8]  message blob (JSON, without ids)
-- ARGV[9]  mode: "timeline" (may open a conversation) | "notice" (only joins an existing one)
-- ARGV[10] queue for a new conversation                ARGV[11] priority (0-99, higher first)
-- ARGV[12] tags, joined by "\31"   ARGV[13] reopen window (ms)   ARGV[14] direction in|out
-- ARGV[15] identifier claims joined by "\30", each
--          "kind\31blind index\31verified(0|1)\31source\31encrypted value" (or ""): the value
--          itself never reaches Redis in clear. A verified one held, verified, by another
--          customer merges the two (merge_fn.lua) unless they conflict; anything else held by
--          another customer becomes a merge suggestion.
-- ARGV[16] event kind (follow / unfollow / complaint record whether the customer blocked
--          this channel)
-- ARGV[17] "" for chat threading (the customer's current conversation), or mail threading:
--          "mail" then candidates joined by "\31", each "k:<dedupe key>" (a mail we stored) or
--          "c:<conversation id>"; the first whose conversation belongs to this customer wins,
--          none -> a new conversation (a mail is not swallowed by another person's thread)
-- ARGV[18] hash of a link code the message carries, or "": a live code merges the sender
--          into the customer it was issued for (at most 5 tries per identity in 10 minutes)
-- ARGV[19] the erasure counter the worker's cached identity keys are valid for, or "": when
--          customers were erased since, nothing is written ({4}): the worker drops its key
--          cache and runs the event again, so no new data is sealed with a destroyed key
-- ARGV[20] "" or, when this channel acknowledges customers' messages automatically
--          (core/pipeline/acknowledgements.py), "again ms\31language": a message that opens a
--          conversation, or (again > 0) the first after "again" ms with neither an automatic
--          nor an agent's reply, records the acknowledgement as due, atomically with the
--          message (crash-safe): td:ack:due conv -> "channel\31now\31message ts\31language",
--          and the conversation's ack_at (at most one per period)
-- ARGV[21] SLA targets in ms (core/sla.py lua_targets): "first\31next" for every queue, then
--          "\30queue\31first\31next" per queue override; an empty target is none; "" = off
-- ARGV[22] why ARGV[11] is what it is ("" at 0), kept as the conversation's priority_why
-- ARGV[23] priority rules only the store can judge (core/pipeline/priority.py), best first,
--          joined by "\30", each "tiers\31messages\31within ms\31level\31reason": the first
--          that holds (the customer's tier is one of tiers; this many of the customer's
--          messages within the window since an agent's last reply) sets the priority
-- ARGV[24] SLA policies for this channel (core/pipeline/sla.py Plan.lua_arg), in config order,
--          joined by "\30", each "priority_min\31name\31first due\31next due\31first warn\31
--          next warn" (absolute ms on the policy's calendar; "" = no target): the first whose
--          priority_min the conversation's priority reaches applies; none -> ARGV[21]
-- ARGV[25] warning share of a target for ARGV[21]'s round-the-clock targets (e.g. 0.8)
-- ARGV[26] routing rules only the store can judge (core/pipeline/routing.py lua_arg), in
--          order, joined by "\30", each "queue\31priority_min\31attr=v1\28v2\29attr2=v3": for
--          a new conversation the first that holds (priority at least priority_min once the
--          rules above applied; each customer attribute one of its values) chooses the queue
--          instead of ARGV[10]
-- Returns {0, "conv:msg"} duplicate (or the echo of our own queued reply)
--         | {1, "conv:msg", customer, opened(0 new-msg,1 new,2 reopened or woken from a
--           snooze), needs_profile(0|1), merged customers, acknowledgement due (0|1)}
--         | {2, ""} notice with no conversation to join

local ch, dkey, user, addr, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ts, now, blob, mode = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9]
local queue, prio, tagstr = ARGV[10], tonumber(ARGV[11]), ARGV[12]
local reopen_ms, dir, ident, kind = tonumber(ARGV[13]), ARGV[14], ARGV[15], ARGV[16]
local thread = ARGV[17] or ''
local linkh = ARGV[18] or ''
local erasures = ARGV[19] or ''
local acks = ARGV[20] or ''
local sla_t = ARGV[21] or ''
local why, pend = ARGV[22] or '', ARGV[23] or ''
local bands, share = ARGV[24] or '', tonumber(ARGV[25] or '') or 0.8
local routes = ARGV[26] or ''
if erasures ~= '' and (redis.call('GET', "{{SUBJECT_ERASURES}}") or '0') ~= erasures then
  return {4, ''}
end

{{INCLUDE:merge_fn}}

local dd = string.format("{{DEDUPE}}", ch)
local seen = redis.call('HGET', dd, dkey)
if seen then return {0, seen} end

-- identity -> customer
local idx = string.format("{{IDENTITY}}", ch)
local cust = redis.call('HGET', idx, user)
if cust and kind == 'unfollow' then
  redis.call('HSET', string.format("{{CUSTOMER}}", cust), 'blocked:' .. ch, now)
elseif cust and kind == 'follow' then
  redis.call('HDEL', string.format("{{CUSTOMER}}", cust), 'blocked:' .. ch)
end
if not cust then
  if mode == 'notice' then
    redis.call('HSET', dd, dkey, '-')
    return {2, ''}
  end
  cust = tostring(redis.call('INCR', "{{SEQ_CUSTOMER}}"))
  redis.call('HSET', idx, user, cust)
  redis.call('HSET', string.format("{{CUSTOMER}}", cust), 'created', now)
end
local ck = string.format("{{CUSTOMER}}", cust)
if name ~= '' then redis.call('HSETNX', ck, 'name', name) end
local needs_profile = 0
if redis.call('HEXISTS', ck, 'name') == 0 and redis.call('HEXISTS', ck, 'profile_at') == 0 then
  needs_profile = 1  -- asked once: profile_at 0 until the profile job answers
  redis.call('HSET', ck, 'profile_at', 0)
end
redis.call('HSET', string.format("{{CUSTOMER_IDENTITIES}}", cust), ch .. '|' .. user, addr)

-- identifiers the customer shared or typed: recorded, indexed, and what they prove
local merged = ''
if ident ~= '' then
  for claim in string.gmatch(ident, '[^\30]+') do
    local ikind, bidx, verified, source, sealed = string.match(claim,
      '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$')
    local field = ikind .. ':' .. bidx
    local ik = string.format("{{CUSTOMER_IDENTIFIERS}}", cust)
    local prev = redis.call('HGET', ik, field)
    if not prev or (string.sub(prev, 1, 1) ~= '1' and verified == '1') then
      redis.call('HSET', ik, field, verified .. '|' .. source .. '|' .. now .. '|' .. sealed)
    end
    local hk = string.format("{{IDENTIFIER_HOLDERS}}", ikind, bidx)
    local held = redis.call('HGET', hk, cust)
    if not held or (held ~= '1' and verified == '1') then redis.call('HSET', hk, cust, verified) end
    local target = nil
    -- an identifier held by many (a shop's hotline typed by its customers) proves nothing
    -- and would pair everyone with everyone: past a dozen holders, no merge, no suggestion
    local holders = {}
    if redis.call('HLEN', hk) <= 12 then holders = redis.call('HGETALL', hk) end
    for i = 1, #holders, 2 do
      local other, ov = holders[i], holders[i + 1]
      if other ~= cust then
        local why, reason, detail = nil, nil, nil
        if verified == '1' and ov == '1' then
          local status = pair_status(cust, other)
          why, reason, detail = merge_conflict(other, cust)
          if status == 'split' or status == 'dismissed' then
            why, reason, detail = 'an agent kept these customers apart', 'kept_apart', nil
          end
          if not why and (not target or tonumber(other) < tonumber(target)) then target = other end
        end
        if not why then reason = (verified == '1' and ov == '1') and 'verified_both' or 'unverified' end
        -- reason/detail are the facts the console words in its language; note stays (English)
        suggest(cust, other, field, cjson.encode({kind = ikind, source = source,
          verified = {[cust] = verified == '1', [other] = ov == '1'}, reason = reason,
          detail = detail, note = why or (verified == '1' and ov == '1' and 'verified by both') or
            'matches, but not verified by both', at = now}), now)
      end
    end
    if target then  -- the older customer keeps its id
      local keep, gone = target, cust
      if tonumber(cust) < tonumber(target) then keep, gone = cust, target end
      merge_customers(keep, gone, 'verified ' .. ikind .. ' (' .. source .. ')', 'system', now)
      merged = merged .. ' ' .. gone
      cust = keep
    end
  end
end
if linkh ~= '' then
  local qk = string.format("{{LINK_CODE_QUOTA}}", 'try:' .. ch .. ':' .. user)
  local tries = redis.call('INCR', qk)
  if tries == 1 then redis.call('EXPIRE', qk, 600) end
  -- and for everyone together: guesses spread over many fresh identities hit this
  local gk = string.format("{{LINK_CODE_QUOTA}}", 'try:all')
  local all = redis.call('INCR', gk)
  if all == 1 then redis.call('EXPIRE', gk, 600) end
  local lk = string.format("{{LINK_CODE}}", linkh)
  local owner = tries <= 5 and all <= 1000 and redis.call('GET', lk)
  if owner then
    redis.call('DEL', lk)  -- single use
    owner = final_customer(owner)
    if redis.call('HEXISTS', string.format("{{CUSTOMER}}", owner), 'erased') == 1 then
      owner = cust  -- issued before an erase: links nothing
    end
    if owner ~= cust then
      merge_customers(owner, cust, 'link code', 'customer', now)
      merged = merged .. ' ' .. cust
      cust = owner
    end
  end
end
ck = string.format("{{CUSTOMER}}", cust)

-- conversation: the customer's current one, reopened or replaced when resolved
local opened = 0
local conv = redis.call('HGET', ck, 'conv')
if thread ~= '' then
  conv = nil
  local first = true
  for cand in string.gmatch(thread, '[^\31]+') do
    if first then
      first = false  -- the "mail" marker
    else
      local c = nil
      if string.sub(cand, 1, 2) == 'k:' then
        local loc = redis.call('HGET', dd, string.sub(cand, 3))
        if loc and loc ~= '-' then c = string.match(loc, '^([^:]+):') end
      else
        c = string.sub(cand, 3)
      end
      if c and redis.call('HGET', string.format("{{CONV}}", c), 'customer') == cust then
        conv = c
        break
      end
    end
  end
end
if kind == 'complaint' then
  -- a spam report blocks mail to this customer only when it is about a mail of ours to
  -- them: anyone can send an unsigned report naming any address
  if conv then redis.call('HSET', ck, 'blocked:' .. ch, now) end
end
local convk
if conv then
  convk = string.format("{{CONV}}", conv)
  local was = redis.call('HGET', convk, 'status')
  if was == 'resolved' and mode == 'timeline' and dir == 'in' then
    local rat = tonumber(redis.call('HGET', convk, 'resolved_at') or '0')
    if now - rat <= reopen_ms then
      redis.call('HSET', convk, 'status', 'open')
      redis.call('HDEL', convk, 'resolved_at')
      redis.call('ZREM', string.format("{{CONVS}}", 'resolved'), conv)
      -- back in its agent's load (core/assignment.py; the assign reactor may release it)
      local who = redis.call('HGET', convk, 'assignee')
      if who and who ~= '' then redis.call('SADD', string.format("{{USER_LOAD}}", who), conv) end
      opened = 2
    else
      conv = nil
    end
  end
  -- a snoozed (pending) conversation wakes when the customer writes; routing below queues
  -- it again (core/workflow.py; the snooze tick drops its stale entry). Reported as reopened,
  -- like the tick's wake-up: the assign reactor hands it out
  if was == 'pending' and mode == 'timeline' and dir == 'in' then
    redis.call('HSET', convk, 'status', 'open')
    redis.call('ZREM', string.format("{{CONVS}}", 'pending'), conv)
    opened = 2
  end
end
if not conv then
  if mode == 'notice' then
    redis.call('HSET', dd, dkey, '-')
    return {2, ''}
  end
  conv = tostring(redis.call('INCR', "{{SEQ_CONVERSATION}}"))
  convk = string.format("{{CONV}}", conv)
  redis.call('HSET', convk, 'customer', cust, 'channel', ch, 'address', addr, 'status', 'open',
             'queue', queue, 'priority', prio, 'created', now, 'updated', now,
             'identity', ch .. '|' .. user)
  if why ~= '' then redis.call('HSET', convk, 'priority_why', why) end
  redis.call('HSET', ck, 'conv', conv)
  redis.call('ZADD', string.format("{{CUSTOMER_CONVS}}", cust), now, conv)
  opened = 1
end

-- The platform's echo of a reply we queued may arrive before our send job records the id
-- the platform gave it: match it to that reply (same channel and text, still queued).
if dir == 'out' and opened == 0 then
  local text = cjson.decode(blob).x
  local mk = string.format("{{MESSAGES}}", conv)
  for _, m in ipairs(redis.call('ZREVRANGE', string.format("{{TIMELINE}}", conv), 0, 9)) do
    local b = redis.call('HGET', mk, m)
    if b then
      local o = cjson.decode(b)
      if text ~= nil and o.d == 'out' and o.s == 'queued' and o.c == ch and o.x == text then
        redis.call('HSET', dd, dkey, conv .. ':' .. m)
        return {0, conv .. ':' .. m}
      end
    end
  end
end

-- the message
local mid = tostring(redis.call('INCR', "{{SEQ_MESSAGE}}"))
redis.call('HSET', string.format("{{MESSAGES}}", conv), mid, blob)
redis.call('ZADD', string.format("{{TIMELINE}}", conv), ts, mid)
local loc = conv .. ':' .. mid
redis.call('HSET', dd, dkey, loc)

-- conversation state, tags and routing (inbound timeline events only)
local status = redis.call('HGET', convk, 'status')
if dir == 'in' and mode == 'timeline' then
  redis.call('HSET', convk, 'channel', ch, 'address', addr, 'last_in', ts, 'updated', now)
  -- per channel identity: what window rules are measured from
  local lk = string.format("{{CUSTOMER_LAST_IN}}", cust)
  local idk = ch .. '|' .. user
  if tonumber(redis.call('HGET', lk, idk) or '0') < ts then redis.call('HSET', lk, idk, ts) end
  if tagstr ~= '' then
    for tag in string.gmatch(tagstr, '[^\31]+') do
      redis.call('SADD', string.format("{{CONV_TAGS}}", conv), tag)
    end
  end
  if pend ~= '' then
    local tier = redis.call('HGET', string.format("{{CUSTOMER}}", cust), 'tier') or ''
    for tiers, n, within, lvl, r in string.gmatch(pend,
        '([^\30\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\30]*)') do
      local holds = tiers == '' or string.find(',' .. tiers .. ',', ',' .. tier .. ',', 1, true)
      if holds and n ~= '' then
        local since = math.max(ts - tonumber(within),
          tonumber(redis.call('HGET', convk, 'agent_reply') or '0') + 1)
        -- the customer's messages only: notes and system lines (a claim) are not repeats
        local ids = redis.call('ZRANGEBYSCORE', string.format("{{TIMELINE}}", conv), since, ts,
                               'LIMIT', 0, 200)
        local got = 0
        if #ids >= tonumber(n) then
          for _, b in ipairs(redis.call('HMGET', string.format("{{MESSAGES}}", conv), unpack(ids))) do
            if b and cjson.decode(b).d == 'in' then got = got + 1 end
          end
        end
        holds = got >= tonumber(n)
      end
      if holds then prio, why = tonumber(lvl), r break end
    end
  end
  local cur = tonumber(redis.call('HGET', convk, 'priority') or '0')
  if prio > cur then
    redis.call('HSET', convk, 'priority', prio, 'priority_why', why)
    cur = prio
  end
  if opened == 1 and routes ~= '' then
    for q, pmin, conds in string.gmatch(routes, '([^\30\31]*)\31([^\31]*)\31([^\30]*)') do
      local ok = pmin == '' or cur >= tonumber(pmin)
      for name, vals in string.gmatch(conds, '([^\29=]+)=([^\29]*)') do
        if not ok then break end
        local v = redis.call('HGET', string.format("{{CUSTOMER}}", cust), name) or ''
        ok = v ~= '' and string.find('\28' .. vals .. '\28', '\28' .. v .. '\28', 1, true) ~= nil
      end
      if ok then
        redis.call('HSET', convk, 'queue', q)
        break
      end
    end
  end
  if status ~= 'resolved' then
    -- lower score first: priority, then the conversation's age
    local created = tonumber(redis.call('HGET', convk, 'created'))
    redis.call('ZADD', string.format("{{QUEUE}}", redis.call('HGET', convk, 'queue')),
               (100 - cur) * 1e13 + created, conv)
  end
else
  redis.call('HSET', convk, 'updated', now)
end
redis.call('ZADD', string.format("{{CONVS}}", status), now, conv)

-- inbox (core/inbox.py, core/sla.py): a customer's message counts as unread until an agent
-- reads or answers, and starts the wait for an agent (the SLA due time) unless one runs.
-- Per message: one ZINCRBY and one HMGET; HSET + ZADD only when a wait starts.
if dir == 'in' and mode == 'timeline' then
  redis.call('ZINCRBY', "{{UNREAD}}", 1, conv)
  local w = redis.call('HMGET', convk, 'sla_due', 'agent_reply', 'queue', 'priority')
  if not w[1] then
    local answered, p = w[2] ~= false, tonumber(w[4] or '0')
    local due, warn, policy
    for pmin, name, fd, nd, fw, nw in string.gmatch(bands,
        '([^\30\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\30]*)') do
      if p >= tonumber(pmin) then
        policy = name
        if answered then due, warn = tonumber(nd), tonumber(nw)
        else due, warn = tonumber(fd), tonumber(fw) end
        break
      end
    end
    if not policy and sla_t ~= '' then
      local first, later = string.match(sla_t, '^([^\30\31]*)\31([^\30]*)')
      for q, f, l in string.gmatch(sla_t, '\30([^\31]*)\31([^\31]*)\31([^\30]*)') do
        if q == w[3] then first, later = f, l end
      end
      local target = tonumber((answered and later) or first)  -- answered: the next reply
      if target then
        local start = math.min(ts, now)  -- a future-dated mail does not buy time
        due, warn, policy = start + target, start + math.floor(target * share), 'queue'
      end
    end
    if due then
      redis.call('HSET', convk, 'sla_due', due, 'sla_warn', warn, 'sla_policy', policy,
                 'sla_target', answered and 'next_response' or 'first_response')
      redis.call('ZADD', "{{SLA_DUE}}", due, conv)
      redis.call('ZADD', "{{SLA_WARN}}", warn, conv)
    end
  end
end

-- an automatic acknowledgement (ARGV[20]): customers' messages only, never automatic mail
local acked = 0
if acks ~= '' and kind == 'message' and dir == 'in' and mode == 'timeline' then
  local again, lang = string.match(acks, '^([^\31]*)\31(.*)$')
  again = tonumber(again or '') or 0
  local due = opened == 1
  if not due and again > 0 then
    local a = redis.call('HMGET', convk, 'ack_at', 'agent_reply')
    due = now - math.max(tonumber(a[1] or '0'), tonumber(a[2] or '0')) >= again
  end
  if due then
    redis.call('HSET', "{{ACKS_DUE}}", conv,
               ch .. '\31' .. now .. '\31' .. math.min(ts, now) .. '\31' .. (lang or ''))
    redis.call('HSET', convk, 'ack_at', now)
    acked = 1
  end
end

redis.call('XADD', "{{FEED}}", 'MAXLEN', '~', {{FEED_MAXLEN}}, '*', 'e', cjson.encode({type = 'message.created', conversation_id = conv,
  message_id = mid, customer_id = cust, opened = opened, ts = now}))
return {1, loc, cust, opened, needs_profile, merged, acked}
