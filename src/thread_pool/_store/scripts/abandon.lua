-- abandon: undo everything a caller's token holds, after it was cancelled or interrupted at any
-- point of acquire (a script may have run without the caller seeing its reply, or may still be on
-- its way: the tombstone makes such a late command take nothing).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] token
-- Returns {released_threads, dropped_reservations, given_up_claims}
-- Only the rare interrupted acquire pays for the scans below.
local token = ARGV[1]
redis.call('SET', tombstone(token), 1, 'PX', 600000)
local prefix = token .. '|'
for _, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
  if string.sub(entry, 1, #prefix) == prefix then
    redis.call('LREM', K_WAITERS, 1, entry)
  end
end
drop_message(token)
local dropped = redis.call('ZREM', K_RESERVED, token)
if dropped > 0 then
  wake_one()
end
-- Threads it claimed for settling: any reaper may take them over at once.
local given_up = 0
local claims = redis.call('HGETALL', K_CLAIMS)
for i = 1, #claims, 2 do
  if claims[i + 1] == token then
    redis.call('HDEL', K_CLAIMS, claims[i])
    redis.call('ZADD', K_SETTLING, 'XX', NOW, claims[i])
    given_up = given_up + 1
  end
end
-- A token holds at most one thread.
local released = 0
local holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  if token_of(holds[i + 1]) == token then
    unlease(holds[i])
    -- A grant marked in flight for a turn (see acquire.lua) whose caller never saw it: that
    -- caller sent nothing, so no settler need wait for it.
    redis.call('HDEL', K_INFLIGHT, holds[i])
    handoff(holds[i], 0)
    released = 1
    break
  end
end
return {released, dropped, given_up}
