-- log_cursor: move a thread's log cursor forward (never back), after a turn that failed but whose
-- context reached the thread.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- ARGV[2] seq     the log seq the thread now holds up to
-- Returns "OK" | "KEPT" (the cursor was already there or further)
local thread, seq = ARGV[1], tonumber(ARGV[2])
local cursor = tonumber(redis.call('HGET', K_CURSORS, thread) or '0')
if seq <= cursor then
  return 'KEPT'
end
redis.call('HSET', K_CURSORS, thread, seq)
return 'OK'
