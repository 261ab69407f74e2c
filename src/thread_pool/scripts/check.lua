-- check: the fence check before an upstream write; is this lease still current, with enough left?
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token
-- ARGV[3] min_ms   the least time that must be left
-- Returns {"OK", remaining_ms, fence} | {"LOST"} | {"SHORT", remaining_ms}
local thread, token = ARGV[1], ARGV[2]
local hold = redis.call('HGET', K_HOLDS, thread)
if not hold or token_of(hold) ~= token then
  return {'LOST'}
end
local remaining = tonumber(redis.call('ZSCORE', K_LEASES, thread)) - NOW
if remaining <= 0 then
  redis.call('HINCRBY', K_META, 'lost', 1)
  return {'LOST'}
end
if remaining < tonumber(ARGV[3]) then
  return {'SHORT', remaining}
end
return {'OK', remaining, redis.call('HGET', K_THREADS, thread)}
