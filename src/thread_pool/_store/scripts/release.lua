-- release: give a leased thread back; it goes to the oldest live waiter, else to the idle set.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token   the holder's token; a release by anyone else changes nothing
-- ARGV[3] score   idle score for a thread with no log cursor yet (a thread's score is its cursor,
--                 the seq of the last log entry it holds: see handoff)
-- ARGV[4] settle  "1": the holder may have left an upstream run active (a turn cut short), so the
--                 thread goes to be settled by the next caller instead of straight back to use
-- Returns "IDLE" | "HANDED" | "RETIRED" | "SETTLE" | "NOTOWNED" | "LOST" (a string: the hot path)
--   LOST: the lease was ours but expired; it is left for the reaper, which settles the thread.
local thread, token = ARGV[1], ARGV[2]
local hold = redis.call('HGET', K_HOLDS, thread)
if not hold or token_of(hold) ~= token then
  return 'NOTOWNED'
end
if tonumber(redis.call('ZSCORE', K_LEASES, thread)) <= NOW then
  redis.call('HINCRBY', K_META, 'lost', 1)
  return 'LOST'
end
unlease(thread)
if ARGV[4] == '1' then
  -- A holder that gives the thread back has done all it could about a request it never named
  -- (it failed, or the holder ended the run itself): only an expired holder's unnamed request
  -- is worth a settler's wait.
  local inflight = redis.call('HGET', K_INFLIGHT, thread)
  if inflight and string.sub(inflight, -1) == '|' then
    redis.call('HDEL', K_INFLIGHT, thread)
  end
  -- Claimable at once (deadline now): the next acquire or reap settles it.
  redis.call('ZADD', K_SETTLING, NOW, thread)
  return 'SETTLE'
end
-- A clean release: whatever the turns recorded in flight has ended.
redis.call('HDEL', K_INFLIGHT, thread)
return handoff(thread, tonumber(ARGV[3]))
