-- wait_alive: a process's dispatcher says its waiters on this pool are still there, all in one
-- call. Queue entries carry a short deadline that the dispatcher keeps pushing forward, so the
-- entries of a process that died (killed, paused) lapse within seconds and hand-offs skip them,
-- instead of handing them a thread that then idles, leased to nobody, for a whole lease TTL.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV    ticket, live_ms, ticket, live_ms, ...: each waiter, and how long its entry stays live
--         without another call (at most the time the waiter has left)
-- Returns ticket, message, ticket, message, ... for the waiters that are no longer queued:
--   "G|thread|fence|deadline_ms|ttl_ms"  a thread was handed over meanwhile: the grant (it may
--                                        also be on its way from the shared mailbox already)
--   "R"     a growth slot came free meanwhile: ask again
--   "GONE"  the entry lapsed and was dropped: ask again (to queue at the back)
-- One pass over the queue, however many waiters (a call per waiter would scan it each time).
local live = {}
for i = 1, #ARGV, 2 do
  live[ARGV[i]] = tonumber(ARGV[i + 1])
end
local left = (#ARGV) / 2
if left > 0 then
  for at, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
    -- Only the ticket is cut out of every entry: other processes' entries are most of them.
    local ticket = string.sub(entry, 1, string.find(entry, '|', 1, true) - 1)
    local ms = live[ticket]
    if ms then
      local _, _, holder = split3(entry)
      redis.call('LSET', K_WAITERS, at - 1, ticket .. '|' .. (NOW + ms) .. '|' .. holder)
      live[ticket] = nil
      left = left - 1
      if left == 0 then
        break
      end
    end
  end
end
local out = {}
for i = 1, #ARGV, 2 do
  local ticket = ARGV[i]
  if live[ticket] then
    out[#out + 1] = ticket
    out[#out + 1] = take_message(ticket) or 'GONE'
  end
end
return out
