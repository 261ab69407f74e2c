-- admin_unreserve: give back a pre-warm reservation that will not be used (interrupted, failed).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket
-- Returns {"OK", dropped} (0 when the slot had lapsed already)
local dropped = redis.call('ZREM', K_RESERVED, ARGV[1])
if dropped > 0 then
  -- A waiter may have been waiting for this slot to grow the pool itself.
  wake_one()
end
return {'OK', dropped}
