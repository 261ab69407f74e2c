-- check: the fence check before an upstream write; is this lease still current, with enough left?
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token
-- ARGV[3] min_ms   the least time that must be left
-- ARGV[4] mark     "1": the write starts a run (response); record "fence|" (a request in flight
--                  whose id is not known yet) so that a settler waits for its holder to name it
--                  (see inflight.lua) instead of handing the thread out under a late write
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
local fence = redis.call('HGET', K_THREADS, thread)
if ARGV[4] == '1' then
  mark_sending(thread, fence)
end
return {'OK', remaining, fence}
