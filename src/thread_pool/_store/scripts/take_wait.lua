-- take_wait: a waiter's wait ran out; leave the queue, but take a grant that arrived meanwhile.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket
-- Returns "G|thread|fence|deadline_ms|ttl_ms" (granted) | {"RETRY"} | {"TIMEOUT"}
-- The entry is found by its ticket: its deadline changes each time its dispatcher says it is
-- still there (wait_alive), so the waiter does not know the entry as it is now.
local ticket = ARGV[1]
local prefix = ticket .. '|'
for _, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
  if string.sub(entry, 1, #prefix) == prefix then
    redis.call('LREM', K_WAITERS, 1, entry)
    redis.call('HINCRBY', K_META, 'timeouts', 1)
    return {'TIMEOUT'}
  end
end
-- Not queued: a hand-off or a wake-up took the entry (its message is on its way, or still in the
-- mailbox), or the entry lapsed.
local msg = take_message(ticket)
if msg == 'R' or not msg then
  -- Woken, or lapsed: asking again finds out (with no time left, it times out).
  return {'RETRY'}
end
return msg -- the grant, "G|thread|fence|deadline_ms|ttl_ms"
