-- register: add a thread created in a reserved growth slot (by a pool growing under load, or by
-- a pre-warm: both grow the pool this one way).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket   the growth reservation (acquire's GROW, or admin_reserve)
-- ARGV[2] thread   the new upstream thread id
-- ARGV[3] holder   who leases it at once (the grower); "" for none: it goes to the oldest
--                  waiter, or idle (a pre-warm)
-- ARGV[4] seq      the log seq the thread was created holding (0: none); becomes its cursor, in
--                  the same step, so no turn can find the thread without it
-- ARGV[5] per_ms   limits.FENCES_PER_MS (see fence_floor)
-- The caller has claimed the thread for this pool (see owners.lua).
-- Returns "G|thread|fence|deadline_ms|ttl_ms" (granted to the holder) | {"OK", "IDLE"|"HANDED"}
--   | {"ABANDONED"} (the grower was cancelled: the thread joins the pool, but not leased)
--   | {"RETIRED"} (the reservation had lapsed and the pool filled up meanwhile: the thread is
--     listed in "retired", so that it can still be deleted upstream)
--   | {"DUPLICATE"} (already in the pool) | {"NOPOOL"} (the pool was deleted meanwhile: nothing
--     is recorded, and the caller deletes the thread upstream)
local ticket, thread, holder = ARGV[1], ARGV[2], ARGV[3]
local had_slot = redis.call('ZREM', K_RESERVED, ticket) == 1
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
if redis.call('HEXISTS', K_THREADS, thread) == 1 then
  return {'DUPLICATE'}
end
local gone = abandoned(ticket)
if not had_slot and not gone then
  local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
  if size >= meta_number('max_size') then
    redis.call('RPUSH', K_RETIRED, thread)
    return {'RETIRED'}
  end
end
enter(thread, fence_floor(ARGV[5]), redis.call('HEXISTS', K_META, 'recovered') == 1)
local seq = tonumber(ARGV[4]) or 0
if seq > 0 then
  redis.call('HSET', K_CURSORS, thread, seq)
end
if gone then
  handoff(thread, 0)
  return {'ABANDONED'}
end
if holder == '' then
  return {'OK', handoff(thread, 0)}
end
local fence, deadline, ttl = grant(thread, ticket, holder)
return granted(thread, fence, deadline, ttl)
