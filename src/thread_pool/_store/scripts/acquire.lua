-- acquire: take the best idle thread, or say what the caller must do instead.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] token        the caller's random token; also its waiting ticket and growth ticket
-- ARGV[2] holder       who holds the lease (host:pid:task), for status
-- ARGV[3] wait_ms      how long the caller will wait (0: do not queue)
-- ARGV[4] config       the caller's fixed settings, packed once per pool object:
--                      "can_grow|create|min_size|max_size|ttl_ms|max_waiters|grow_ms|settle_ms|
--                       delay_ms"
--   can_grow     "1" if the caller can create upstream threads
--   create       "1" to create the pool's meta if it is missing (with min/max/ttl as defaults)
--   max_waiters  callers allowed to wait at once
--   grow_ms      how long a growth reservation is kept
--   settle_ms    how long a settler's claim on an expired thread lasts
--   delay_ms     how long after its deadline an expired lease is reclaimed (see claim_expired)
-- ARGV[5] epoch        the pool's epoch as this caller saw it before ("": never seen it)
-- ARGV[6] turn         what the caller does with an idle thread granted here ("" or "0": a
--                      plain lease). "1": it starts a turn's run at once, so the grant is that
--                      request's fence check (check.lua): the request is marked in flight
--                      ("fence|"). "2": that, and the reply carries what the thread is missing
--                      from the log (the turn's context), which the caller would read next.
--                      Both spare the caller round trips before its first request; a thread
--                      granted any other way (grown, handed to a waiter) gets neither.
-- Returns one of:
--   "G|thread|fence|deadline_ms|ttl_ms"  granted (a string, see granted() in _common.lua)
--   {"G|thread|fence|deadline_ms|ttl_ms", thread_missing(thread)...}  granted, turn "2"
--   {"SETTLE", thread...}      expired threads claimed for the caller to settle; then ask again
--   {"GROW", ticket}           a slot is reserved: create a thread, then register it
--   {"WAIT", ticket, entry, next_ms}  queued: block on the ticket's mailbox, waking after next_ms
--                                     (if not -1) to reclaim a lease that will have expired
--   {"FULL", waiting}          too many waiters
--   {"TIMEOUT"}                nothing free and wait_ms is 0
--   {"NOPOOL"}                 unknown pool and create is "0"
--   {"ABANDONED"}              this token was abandoned: its caller is gone
--   {"DRAINING"}               the pool is being drained: no new leases
--   {"LOSTSTATE", ms}          the pool's state is gone from Redis (see lost_state)
local token, holder = ARGV[1], ARGV[2]
local can_grow, create, min_size, max_size, ttl_ms, max_waiters, grow_ms, settle_ms, delay_ms =
  string.match(ARGV[4], '^([01])|([01])|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$')
if not delay_ms then
  return redis.error_reply('ERR acquire: malformed config ' .. ARGV[4])
end
delay_ms = tonumber(delay_ms)
if abandoned(token) then
  return {'ABANDONED'}
end
-- One read of the meta serves the loss check, the existence check, the drain check and the grant.
local m = redis.call('HMGET', K_META, 'epoch', 'state_lost', 'recovered', 'draining', 'ttl_ms')
local lost = lost_state(m, ARGV[5])
if lost then
  return {'LOSTSTATE', lost}
end
if not m[1] and not ensure_pool(create, min_size, max_size, ttl_ms) then
  return {'NOPOOL'}
end
if m[4] then
  return {'DRAINING'}
end

local best = redis.call('ZPOPMAX', K_IDLE)
if best[1] then
  local thread = best[1]
  local fence, deadline, ttl = grant(thread, token, holder, tonumber(m[5]))
  local reply = granted(thread, fence, deadline, ttl)
  local turn = ARGV[6] or ''
  if turn == '' or turn == '0' then
    return reply
  end
  mark_sending(thread, fence)
  if turn == '1' then
    return reply
  end
  local out = thread_missing(thread)
  table.insert(out, 1, reply)
  return out
end

local claimed = claim_expired(16, tonumber(settle_ms), token, delay_ms)
if #claimed > 0 then
  return {'SETTLE', unpack(claimed)}
end

if can_grow == '1' then
  local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
  if size < meta_number('max_size') then
    redis.call('ZADD', K_RESERVED, NOW + tonumber(grow_ms), token)
    return {'GROW', token}
  end
end

local wait_ms = tonumber(ARGV[3])
if wait_ms <= 0 then
  redis.call('HINCRBY', K_META, 'timeouts', 1)
  return {'TIMEOUT'}
end
max_waiters = tonumber(max_waiters)
if redis.call('LLEN', K_WAITERS) >= max_waiters then
  local live = live_waiters()
  if live >= max_waiters then
    return {'FULL', live}
  end
end
local entry = token .. '|' .. (NOW + wait_ms) .. '|' .. holder
redis.call('RPUSH', K_WAITERS, entry)
return {'WAIT', token, entry, next_expiry(delay_ms)}
