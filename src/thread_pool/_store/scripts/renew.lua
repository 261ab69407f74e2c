-- renew: push a live lease's deadline to now + ttl.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token
-- ARGV[3] ttl_ms   0: the pool's lease TTL
-- Returns {"OK", deadline_ms, ttl_ms} | {"LOST"} (not ours, or already expired: a lease never revives)
local thread, token = ARGV[1], ARGV[2]
local hold = redis.call('HGET', K_HOLDS, thread)
local deadline = tonumber(redis.call('ZSCORE', K_LEASES, thread))
if not hold or token_of(hold) ~= token or deadline <= NOW then
  if hold and token_of(hold) == token then
    redis.call('HINCRBY', K_META, 'lost', 1)
  end
  return {'LOST'}
end
local ttl = tonumber(ARGV[3])
if ttl <= 0 then
  ttl = meta_number('ttl_ms')
end
deadline = NOW + ttl
redis.call('ZADD', K_LEASES, 'XX', deadline, thread)
return {'OK', deadline, ttl}
