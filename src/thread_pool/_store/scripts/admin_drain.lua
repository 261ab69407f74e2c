-- admin_drain: mark a pool as draining (or not); report what is still leased and waiting.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] "1" to mark it draining, "0" to clear the mark
-- Returns {"NOPOOL"} or {"OK", leased, settling, waiting}
-- The mark is the meta field "draining" (its value: when it was set, ms).
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
if ARGV[1] == '1' then
  redis.call('HSETNX', K_META, 'draining', NOW)
  -- Callers queued for a thread ask again and are told the pool is draining.
  wake_all()
else
  redis.call('HDEL', K_META, 'draining')
end
return {'OK', redis.call('ZCARD', K_LEASES), redis.call('ZCARD', K_SETTLING), live_waiters()}
