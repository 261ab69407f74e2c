-- admin_register: add a pre-warmed thread in its reserved slot, straight to a waiter or idle.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket   the reservation (from admin_reserve)
-- ARGV[2] thread   the new upstream thread id
-- ARGV[3] seq      the log seq the thread was created holding (0: none); becomes its cursor
-- Returns {"OK", "IDLE"|"HANDED"|"RETIRED"} | {"DUPLICATE"} | {"FULL"} | {"NOPOOL"}
--   FULL: the reservation lapsed and the pool filled up meanwhile; nothing is recorded, and the
--   caller deletes the thread upstream. NOPOOL: the pool was deleted meanwhile (likewise).
local ticket, thread = ARGV[1], ARGV[2]
local had_slot = redis.call('ZREM', K_RESERVED, ticket) == 1
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
if redis.call('HEXISTS', K_THREADS, thread) == 1 then
  return {'DUPLICATE'}
end
if not had_slot then
  local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
  if size >= meta_number('max_size') then
    return {'FULL'}
  end
end
redis.call('HSET', K_THREADS, thread, 0)
local seq = tonumber(ARGV[3] or '0') or 0
if seq > 0 then
  redis.call('HSET', K_CURSORS, thread, seq)
end
return {'OK', handoff(thread, 0)}
