-- admin_reserve: reserve one growth slot for a pre-warm, unless the pool has its target already.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket    the pre-warmer's random ticket (the member of the reserved set)
-- ARGV[2] target    threads wanted (capped at the pool's max_size)
-- ARGV[3] grow_ms   how long the slot is kept (as acquire's growth reservations)
-- ARGV[4] min_size, ARGV[5] max_size, ARGV[6] ttl_ms: defaults if the pool is created here
-- Returns {"GROW", threads, reserved, cap} | {"DONE", threads, reserved, cap} | {"DRAINING"}
-- A pool marked lost (see lost_state) is re-created here: the mark goes, sizes and TTL it lacks
-- are the pre-warm's defaults, and the threads it still knows (none after a restart without
-- persistence) stay. Threads of the lost state are unknown to Redis and stay upstream: only an
-- import of a backup, or an add of their ids, can bring them back (the upstream API cannot list
-- threads).
-- Threads plus reservations are counted in one step with the reservation, and acquire counts
-- the same way, so racing pre-warms and growing pools together never pass the cap.
if redis.call('HEXISTS', K_META, 'state_lost') == 1 then
  revive(ARGV[4], ARGV[5], ARGV[6])
end
ensure_pool('1', ARGV[4], ARGV[5], ARGV[6])
if redis.call('HEXISTS', K_META, 'draining') == 1 then
  return {'DRAINING'}
end
-- Lapsed reservations (a pre-warmer or grower that died) free their slot here too.
if redis.call('ZREMRANGEBYSCORE', K_RESERVED, '-inf', NOW) > 0 then
  wake_one()
end
local cap = math.min(tonumber(ARGV[2]), meta_number('max_size'))
local threads, reserved = redis.call('HLEN', K_THREADS), redis.call('ZCARD', K_RESERVED)
if threads + reserved < cap then
  redis.call('ZADD', K_RESERVED, NOW + tonumber(ARGV[3]), ARGV[1])
  return {'GROW', threads, reserved + 1, cap}
end
return {'DONE', threads, reserved, cap}
