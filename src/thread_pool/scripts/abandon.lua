-- abandon: undo everything a caller's token holds, after it was cancelled or interrupted at any
-- point of acquire (the script may have run without the caller seeing its reply).
-- KEYS: the pool's keys (see _common.lua)
-- ARGV[1] token
-- ARGV[2] entry   its queue entry, or "" if it never queued
-- Returns {released_threads, dropped_reservations}
local token = ARGV[1]
if ARGV[2] ~= '' then
  redis.call('LREM', K_WAITERS, 1, ARGV[2])
end
redis.call('DEL', mailbox(token))
local dropped = redis.call('ZREM', K_RESERVED, token)
if dropped > 0 then
  wake_one()
end
-- A token holds at most one thread; only the rare cancelled acquire pays for this scan.
local released = 0
local holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  if token_of(holds[i + 1]) == token then
    unlease(holds[i])
    handoff(holds[i], 0)
    released = released + 1
    break
  end
end
return {released, dropped}
