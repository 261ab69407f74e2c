-- inflight: record (or clear) the upstream request a turn has in flight on its thread, so that a
-- settler can find it if the holder dies. Recording is a fenced write: only the current holder.
-- KEYS: the pool's keys (see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token
-- ARGV[3] value   "fence|id" to record; "" to clear this holder's record
-- Returns {"OK"} | {"LOST"} (not the holder any more: nothing changed)
local thread, token, value = ARGV[1], ARGV[2], ARGV[3]
local hold = redis.call('HGET', K_HOLDS, thread)
if not hold or token_of(hold) ~= token then
  return {'LOST'}
end
if value == '' then
  redis.call('HDEL', K_INFLIGHT, thread)
else
  redis.call('HSET', K_INFLIGHT, thread, value)
end
return {'OK'}
