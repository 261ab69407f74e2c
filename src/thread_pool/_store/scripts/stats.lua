-- stats: one consistent snapshot of a pool's counts, sizes and counters.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- Returns {"NOPOOL"}, {"LOSTSTATE", ms} (see lost_state) or {"OK", threads, idle, leased,
--   settling, reserved, waiting, retired, min_size, max_size, ttl_ms, granted, timeouts, lost,
--   reaped, created_ms, lock_errors, used_ms, idle_expiry_ms}
--   used_ms: when a lease was last granted (created_ms if never)
--   idle_expiry_ms: the pool's own idle expiry (0: none, the maintainer's default applies)
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
local lost = redis.call('HGET', K_META, 'state_lost')
if lost then
  return {'LOSTSTATE', lost}
end
local m = redis.call('HMGET', K_META, 'min_size', 'max_size', 'ttl_ms', 'granted', 'timeouts',
  'lost', 'reaped', 'created_ms', 'lock_errors', 'used_ms', 'idle_expiry_ms')
return {'OK', redis.call('HLEN', K_THREADS), redis.call('ZCARD', K_IDLE),
  redis.call('ZCARD', K_LEASES), redis.call('ZCARD', K_SETTLING), redis.call('ZCARD', K_RESERVED),
  live_waiters(), redis.call('LLEN', K_RETIRED), m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8],
  m[9] or 0, m[10] or m[8], m[11] or 0}
