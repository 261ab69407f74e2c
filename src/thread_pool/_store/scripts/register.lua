-- register: add the thread a grower created in its reserved slot, leased to the grower.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket   the growth reservation (the grower's token)
-- ARGV[2] thread   the new upstream thread id
-- ARGV[3] holder
-- Returns "G|thread|fence|deadline_ms|ttl_ms" (granted) | {"DUPLICATE"} | {"RETIRED"}
--   | {"ABANDONED"} (the grower was cancelled: the thread joins the pool, but not leased)
--   RETIRED: the reservation had lapsed and the pool filled up meanwhile; the thread is listed in
--   "retired" so that it can still be deleted upstream.
local ticket, thread = ARGV[1], ARGV[2]
local had_slot = redis.call('ZREM', K_RESERVED, ticket) == 1
if redis.call('HEXISTS', K_THREADS, thread) == 1 then
  return {'DUPLICATE'}
end
if not had_slot and not abandoned(ticket) then
  local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
  if size >= meta_number('max_size') then
    redis.call('RPUSH', K_RETIRED, thread)
    return {'RETIRED'}
  end
end
redis.call('HSET', K_THREADS, thread, 0)
if abandoned(ticket) then
  handoff(thread, 0)
  return {'ABANDONED'}
end
local fence, deadline, ttl = grant(thread, ticket, ARGV[3])
return granted(thread, fence, deadline, ttl)
