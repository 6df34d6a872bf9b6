-- subject_keys.lua: the existing keys of a batch's senders, in one round trip. Read-only (no
-- fsync wait): keys for new identities are written with the batch itself (core/subjects.py).
--
-- KEYS[1] identity hash -> key id (td:subjects)   KEYS[2] key id -> wrapped key (td:subject_keys)
-- ARGV: identity hashes
-- Returns the flat list key id, wrapped key ... in ARGV order (false, false for none)

local out = {}
for i = 1, #ARGV do
  local kid = redis.call('HGET', KEYS[1], ARGV[i])
  local wrapped = kid and redis.call('HGET', KEYS[2], kid)
  if kid and wrapped then
    table.insert(out, kid)
    table.insert(out, wrapped)
  else
    table.insert(out, false)
    table.insert(out, false)
  end
end
return out
