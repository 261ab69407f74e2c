-- owners: which pool owns each upstream thread, under one key prefix. Not a pool script: no
-- prelude, and its one key is the prefix's owners hash (thread id -> pool key), which lives in
-- its own cluster slot, apart from every pool. A thread entering a pool is claimed here first
-- and registered in the pool after (see owners.py), so two pools can never both hold it.
-- KEYS[1] the owners hash "<prefix>:owners"
-- ARGV[1] "claim" or "release"
-- ARGV[2] the pool key
-- ARGV[3..] thread ids
-- claim:   {"OK", thread...} every thread is now the pool's; listed are those it did not own
--          before | {"OWNED", thread, owner} another pool owns this one: nothing was claimed
-- release: {"OK", n} the records of the threads the pool owned are gone (others are left)
local op, pool = ARGV[1], ARGV[2]
if op == 'claim' then
  local new = {}
  for i = 3, #ARGV do
    local owner = redis.call('HGET', KEYS[1], ARGV[i])
    if owner and owner ~= pool then
      return {'OWNED', ARGV[i], owner}
    end
    if not owner then
      new[#new + 1] = ARGV[i]
    end
  end
  for _, thread in ipairs(new) do
    redis.call('HSET', KEYS[1], thread, pool)
  end
  return {'OK', unpack(new)}
end
local n = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == pool then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return {'OK', n}
