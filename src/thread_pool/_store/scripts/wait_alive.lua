-- wait_alive: a waiter says it is still there. Queue entries carry a short deadline that waiters
-- keep pushing forward, so the entry of a waiter that died (killed, paused) lapses within
-- seconds and hand-offs skip it, instead of handing it a thread that then idles, leased to
-- nobody, for a whole lease TTL.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] ticket
-- ARGV[2] entry       the waiter's queue entry as last returned (by acquire or by this script)
-- ARGV[3] live_ms     how long the entry stays live without another call (at most the time the
--                     waiter has left)
-- Returns one of:
--   {"WAITING", entry}   still queued, in the same place; the entry to give next time
--   "G|thread|fence|deadline_ms|ttl_ms"  a thread was handed over meanwhile: the grant
--   {"RETRY"}            a growth slot came free meanwhile: ask again
--   {"GONE"}             the entry lapsed and was dropped: ask again (to queue at the back)
local ticket, entry = ARGV[1], ARGV[2]
local at = redis.call('LPOS', K_WAITERS, entry)
if at then
  local _, _, holder = split3(entry)
  local fresh = ticket .. '|' .. (NOW + tonumber(ARGV[3])) .. '|' .. holder
  redis.call('LSET', K_WAITERS, at, fresh)
  return {'WAITING', fresh}
end
-- Not queued: a hand-off (or a wake-up) took the entry and left its message in the mailbox in
-- the same script, so an empty mailbox means the entry lapsed.
local msg = take_mailbox(ticket)
if msg == 'R' then
  return {'RETRY'}
end
if msg then
  return msg
end
return {'GONE'}
