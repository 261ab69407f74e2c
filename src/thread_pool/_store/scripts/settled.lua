-- settled: a claimed thread's upstream run is settled; hand it out again, or drop it.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] outcome  "ok": back to waiters/idle; "gone": the thread no longer exists upstream;
--                  "retry": not settled yet; end the claim now so any reaper may try again
-- ARGV[3] score    idle score
-- Returns {"IDLE"} | {"HANDED"} | {"RETIRED"} | {"DROPPED"} | {"RETRY"} | {"NOTCLAIMED"}
local thread, result = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', K_SETTLING, thread) then
  return {'NOTCLAIMED'}
end
redis.call('HDEL', K_CLAIMS, thread)
if result == 'retry' then
  redis.call('ZADD', K_SETTLING, NOW, thread)
  return {'RETRY'}
end
redis.call('ZREM', K_SETTLING, thread)
-- Settled or gone: whatever its last holder had in flight has ended.
redis.call('HDEL', K_INFLIGHT, thread)
if result == 'gone' then
  -- Gone upstream: it will never run again, so its log cursor goes too.
  redis.call('HDEL', K_THREADS, thread)
  redis.call('HDEL', K_CURSORS, thread)
  return {'DROPPED'}
end
return {handoff(thread, tonumber(ARGV[3]))}
