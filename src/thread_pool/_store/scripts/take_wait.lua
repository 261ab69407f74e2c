-- take_wait: a waiter's wait ran out; leave the queue, but take a grant that arrived meanwhile.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket
-- ARGV[2] entry    the waiter's queue entry, as acquire returned it
-- Returns "G|thread|fence|deadline_ms|ttl_ms" (granted) | {"RETRY"} | {"TIMEOUT"}
local ticket = ARGV[1]
redis.call('LREM', K_WAITERS, 1, ARGV[2])
local msg = take_mailbox(ticket)
if msg == 'R' then
  return {'RETRY'}
end
if msg then
  return msg -- the grant, "G|thread|fence|deadline_ms|ttl_ms"
end
redis.call('HINCRBY', K_META, 'timeouts', 1)
return {'TIMEOUT'}
