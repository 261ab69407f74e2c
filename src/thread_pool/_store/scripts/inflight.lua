-- inflight: record (or clear) the upstream request a turn has in flight on its thread, so that a
-- settler can find it if the holder dies. "fence|" (set by check.lua before a write that starts
-- a run) means "sent, id not known yet"; this names the id or clears the record.
-- KEYS: the pool's keys (see _common.lua)
-- ARGV[1] thread
-- ARGV[2] token
-- ARGV[3] fence
-- ARGV[4] id      the request's id to record; "" to clear this holder's record
-- Returns {"OK"} | {"LATE"} | {"LOST"}
--   LATE: the lease was taken over, but the record is still this fence's (the settler has not
--         finished waiting for it): the id was recorded (or the record cleared) for the settler
--   LOST: neither holder nor awaited: nothing changed
local thread, token, fence, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local word = 'OK'
local hold = redis.call('HGET', K_HOLDS, thread)
if not hold or token_of(hold) ~= token then
  local current = redis.call('HGET', K_INFLIGHT, thread)
  if not current or string.sub(current, 1, #fence + 1) ~= fence .. '|' then
    return {'LOST'}
  end
  word = 'LATE'
end
if id == '' then
  redis.call('HDEL', K_INFLIGHT, thread)
else
  redis.call('HSET', K_INFLIGHT, thread, fence .. '|' .. id)
end
return {word}
