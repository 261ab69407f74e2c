-- Shared prelude, prepended to every script before it is loaded (a script cannot call another).
--
-- Every script gets one key, KEYS[1], the pool's meta hash "<prefix>:{<pool>}:meta"; the other
-- keys of the pool are named from it here. All of them carry the pool's hash tag, so they live in
-- the same cluster slot, and passing one key instead of ten halves what the client packs and
-- sends per call (the client, not Redis, is the bottleneck of a lease).
--   meta      hash    min_size, max_size, ttl_ms, created_ms, epoch and counters; a pool whose
--                     state was found lost carries `state_lost` (ms) until an import, an add or a
--                     pre-warm clears it and sets `recovered` (see lost_state)
--   threads   hash    thread id -> fence (number of grants so far)
--   idle      zset    idle thread id -> score (highest is handed out first)
--   leases    zset    leased thread id -> deadline (ms, Redis time)
--   holds     hash    leased thread id -> "token|fence|acquired_ms|holder"
--   settling  zset    thread id being settled -> deadline of the settler's claim (ms)
--   waiters   list    FIFO of "ticket|deadline_ms|holder"
--   reserved  zset    growth reservation ticket -> deadline (ms)
--   retired   list    thread ids taken out of the pool that may still exist upstream
--   claims    hash    thread id being settled -> token of the caller that claimed it
--   inflight  hash    thread id -> "fence|id" of the upstream request a turn started and has
--                     not seen end (a run, a background response); "fence|" while the request
--                     that starts it is on its way (id not known yet); read when the thread is
--                     settled
--   log       stream  the canonical context log: one entry per message, id "<seq>-0", fields
--                     role, content, origin (thread, "" for appended context), run, turn, time
--   logged    hash    turn (or append) id -> seq of its last log entry: appends are idempotent
--   cursors   hash    thread id -> seq of the last log entry the thread holds (its idle score)
--   w:<ticket>  list  a waiter's own mailbox (tickets without a dot, from older clients)
--   d:<box>   list    the shared mailbox of one process's waiters, "<box>.<n>" tickets: each
--                     message is "<ticket>|<message>", read by that process's dispatcher
--   x:<token>   string  tombstone of a token whose acquire was abandoned
-- Key names here and in keys.py must agree (tests check it). Time is always Redis server time.

-- Declared first and set per call below: in the functions library (see scripts/__init__.py)
-- the helpers are defined once, at library level, and read these as upvalues that each function
-- sets when it is called (a function may not set globals).
local K_META, BASE, K_THREADS, K_IDLE, K_LEASES, K_HOLDS, K_SETTLING, K_WAITERS
local K_RESERVED, K_RETIRED, K_CLAIMS, K_INFLIGHT, K_LOG, K_LOGGED, K_CURSORS
local t, NOW
-- ==== per call ====
-- The names only change with the pool: a library's function named them already if it was
-- called on the same pool last (a string comparison in Lua is a pointer comparison).
if KEYS[1] ~= K_META then
  K_META = KEYS[1]
  BASE = string.sub(K_META, 1, -5) -- strip "meta"
  K_THREADS, K_IDLE, K_LEASES = BASE .. 'threads', BASE .. 'idle', BASE .. 'leases'
  K_HOLDS, K_SETTLING, K_WAITERS = BASE .. 'holds', BASE .. 'settling', BASE .. 'waiters'
  K_RESERVED, K_RETIRED, K_CLAIMS = BASE .. 'reserved', BASE .. 'retired', BASE .. 'claims'
  K_INFLIGHT = BASE .. 'inflight'
  K_LOG, K_LOGGED, K_CURSORS = BASE .. 'log', BASE .. 'logged', BASE .. 'cursors'
end
t = redis.call('TIME')
NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function mailbox(ticket)
  return BASE .. 'w:' .. ticket
end

-- Empty a waiter's mailbox: the message it held ("R", a grant, or nil), the box deleted.
local function take_mailbox(ticket)
  local box = mailbox(ticket)
  local msg = redis.call('LPOP', box)
  redis.call('DEL', box)
  return msg
end

-- A caller cancelled mid-acquire leaves a tombstone, so that a command of its that was still in
-- flight (sent on a connection that was then dropped) cannot take anything after the clean-up.
local function tombstone(token)
  return BASE .. 'x:' .. token
end

local function abandoned(token)
  return redis.call('EXISTS', tombstone(token)) == 1
end

-- Split "a|b|rest" into a, b, rest; the last field may itself contain "|".
local function split3(s)
  local i = string.find(s, '|', 1, true)
  local j = string.find(s, '|', i + 1, true)
  return string.sub(s, 1, i - 1), string.sub(s, i + 1, j - 1), string.sub(s, j + 1)
end

local function token_of(hold)
  return string.sub(hold, 1, string.find(hold, '|', 1, true) - 1)
end

-- A ticket "<box>.<n>" belongs to a process's dispatcher, which blocks on one shared mailbox
-- for all of its waiters (a connection per process, not per waiter); nil for a ticket of its own.
local function shared_box(ticket)
  local dot = string.find(ticket, '.', 1, true)
  if dot then
    return BASE .. 'd:' .. string.sub(ticket, 1, dot - 1)
  end
  return nil
end

-- Leave a message ("R" or a grant) for a waiter; a box left unread goes away on its own.
local function deliver(ticket, msg, wait_deadline)
  local box = shared_box(ticket)
  if box then
    msg = ticket .. '|' .. msg
  else
    box = mailbox(ticket)
  end
  redis.call('RPUSH', box, msg)
  redis.call('PEXPIRE', box, wait_deadline - NOW + 60000)
end

-- Take a waiter's message out of a shared box (nil: not there). Only the rare paths (a wait that
-- ran out or lapsed, an abandon, a dead waiter's lease) scan a box; it holds only the messages
-- its dispatcher has not read yet.
local function take_shared(box, ticket)
  local prefix = ticket .. '|'
  for _, msg in ipairs(redis.call('LRANGE', box, 0, -1)) do
    if string.sub(msg, 1, #prefix) == prefix then
      redis.call('LREM', box, 1, msg)
      return string.sub(msg, #prefix + 1)
    end
  end
  return nil
end

-- The message a waiter has not received yet: "R", a grant, or nil. A dispatcher's waiter may
-- already have had its message read by the dispatcher (then in the process, on its way to the
-- waiter): a thread the ticket holds is its grant, rebuilt from the lease.
local function take_message(ticket)
  local msg = take_mailbox(ticket) -- an older client's release may have used the own mailbox
  local box = shared_box(ticket)
  if msg or not box then
    return msg
  end
  msg = take_shared(box, ticket)
  if msg then
    return msg
  end
  local holds = redis.call('HGETALL', K_HOLDS)
  for i = 1, #holds, 2 do
    local token, fence, rest = split3(holds[i + 1])
    if token == ticket then
      local acquired = tonumber(string.sub(rest, 1, string.find(rest, '|', 1, true) - 1))
      local deadline = tonumber(redis.call('ZSCORE', K_LEASES, holds[i]))
      return 'G|' .. holds[i] .. '|' .. fence .. '|' .. deadline .. '|' .. (deadline - acquired)
    end
  end
  return nil
end

-- Forget what was left for a waiter that is gone.
local function drop_message(ticket)
  redis.call('DEL', mailbox(ticket))
  local box = shared_box(ticket)
  if box then
    take_shared(box, ticket)
  end
end

local function meta_number(field)
  return tonumber(redis.call('HGET', K_META, field))
end

-- The pool's epoch: Redis time in microseconds when its meta was created, as a decimal string.
-- A caller remembers the epoch it saw; finding another (or none) later means the pool it knew is
-- gone from Redis, see lost_state.
local function new_epoch()
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- An integer as decimal text. Lua turns a number into text with "%.14g", which writes 1e+14
-- and above with an exponent; fences may be that large (a recovery raises them, see
-- fence_floor), and every integer below 2^53 is exact with "%.0f".
local function int_text(n)
  return string.format('%.0f', n)
end

-- Create the pool's meta hash if it is missing and creation is allowed; false if the pool is
-- unknown. Counters start at zero so every field always exists. A pool created before epochs
-- existed gets one here.
local function ensure_pool(create, min_size, max_size, ttl_ms)
  if redis.call('EXISTS', K_META) == 1 then
    redis.call('HSETNX', K_META, 'epoch', new_epoch())
    return true
  end
  if create ~= '1' then
    return false
  end
  redis.call('HSET', K_META, 'min_size', min_size, 'max_size', max_size, 'ttl_ms', ttl_ms,
    'created_ms', NOW, 'granted', 0, 'timeouts', 0, 'lost', 0, 'reaped', 0, 'epoch', new_epoch())
  return true
end

-- Is the pool's state lost? `m` is HMGET meta epoch, state_lost, recovered (read by the caller,
-- who may want more fields in the same call); `known` the epoch the caller saw before ('' none).
-- A caller that knew epoch E and finds no meta, or another epoch not set by a recovery after E,
-- is looking at a pool Redis forgot (a restart without persistence, a failover to an empty
-- replica): it marks the pool lost, in Redis, so that every caller from then on is refused too,
-- new processes included, until an operator restores it (import) or re-creates it (pre-warm).
-- Returns the ms the loss was found (a string), or nil when the caller may go on.
local function lost_state(m, known)
  known = known or ''
  if m[2] then
    return m[2]
  end
  if known == '' or m[1] == known then
    return nil
  end
  if m[3] and tonumber(known) and tonumber(known) < tonumber(m[3]) then
    return nil -- the epoch the caller knew was superseded by an operator's recovery
  end
  redis.call('HSET', K_META, 'state_lost', NOW, 'lost_epoch', known)
  return tostring(NOW)
end

-- A pool that was found lost is usable again (an import, an add of its threads or a pre-warm did
-- it): epochs seen before now are accepted from here on (their leases are void: the recovery
-- dropped them).
local function mark_recovered()
  redis.call('HDEL', K_META, 'state_lost', 'lost_epoch')
  redis.call('HSET', K_META, 'recovered', new_epoch())
end

-- Bring back a pool marked lost (an add of its threads, a pre-warm): the sizes and TTL it lacks
-- become the given defaults, its counters start at zero where they are missing, and it keeps
-- the epoch it was known by (so fence_floor still counts from its beginning).
local function revive(min_size, max_size, ttl_ms)
  local m = redis.call('HMGET', K_META, 'min_size', 'max_size', 'ttl_ms', 'lost_epoch')
  redis.call('HSET', K_META, 'min_size', m[1] or min_size, 'max_size', m[2] or max_size,
    'ttl_ms', m[3] or ttl_ms)
  for _, counter in ipairs({'granted', 'timeouts', 'lost', 'reaped'}) do
    redis.call('HSETNX', K_META, counter, 0)
  end
  redis.call('HSETNX', K_META, 'created_ms', NOW)
  redis.call('HSETNX', K_META, 'epoch', m[4] or new_epoch())
  mark_recovered()
end

-- The fence of a thread that comes (back) into a pool whose grants of it are not recorded: a
-- thread a shrink retired, or any thread of a pool that was once found lost. It is `per_ms`
-- (limits.FENCES_PER_MS) per millisecond since the pool's epoch: no thread can have been granted
-- that often (see admin_import.lua), so every grant from here on is above every fence the pool
-- used before, and the floor, counted from a fixed start, stays below 2^53 for centuries.
-- Read it before revive() or an import clears `lost_epoch`.
local function fence_floor(per_ms)
  local m = redis.call('HMGET', K_META, 'lost_epoch', 'epoch')
  local epoch_us = tonumber(m[1] or m[2] or '')
  if not epoch_us then
    return 0
  end
  return math.max(NOW - math.floor(epoch_us / 1000), 0) * tonumber(per_ms)
end

-- Register `thread` with the pool at fence `floor` if it was retired (it comes off the retired
-- list, so that purge_retired cannot delete it upstream while it is in the pool) or `forced`,
-- else at 0. A fence never goes down for a thread id.
local function enter(thread, floor, forced)
  local back = redis.call('LREM', K_RETIRED, 0, thread) > 0
  redis.call('HSET', K_THREADS, thread, int_text((back or forced) and floor or 0))
end

-- Hand `thread` to `token`: the fence goes up by one with every grant. Returns the fence (as
-- text), the deadline and the TTL (so the holder can count its time by its own clock). `ttl` is
-- the pool's ttl_ms when the caller read it already (with other meta fields, in one HMGET).
local function grant(thread, token, holder, ttl)
  local fence = int_text(redis.call('HINCRBY', K_THREADS, thread, 1))
  ttl = ttl or meta_number('ttl_ms')
  local deadline = NOW + ttl
  redis.call('ZADD', K_LEASES, deadline, thread)
  redis.call('HSET', K_HOLDS, thread, token .. '|' .. fence .. '|' .. NOW .. '|' .. holder)
  redis.call('HINCRBY', K_META, 'granted', 1)
  -- When the pool was last used: what idle-pool retirement (thread-pool gc) goes by.
  redis.call('HSET', K_META, 'used_ms', NOW)
  return fence, deadline, ttl
end

-- The reply to a caller who got a thread: one string, the same as a waiter's mailbox message.
-- One bulk string costs the client far less to parse than an array of five (the hot path).
local function granted(thread, fence, deadline, ttl)
  return 'G|' .. thread .. '|' .. fence .. '|' .. deadline .. '|' .. ttl
end

-- Mark `thread` as having a request on its way that starts a run (response), its id not known
-- yet ("fence|"): a settler waits for the holder to name it (see inflight.lua) instead of
-- handing the thread out under a late write. Set by the fence check before such a write, or by
-- the grant of a turn's lease, which is that check (see acquire.lua).
local function mark_sending(thread, fence)
  redis.call('HSET', K_INFLIGHT, thread, fence .. '|')
end

-- What `thread` is missing from the pool's log: {last seq, cursor, first seq, then per missing
-- entry: seq, role, content, origin, time}: the entries after the thread's cursor that it did
-- not make itself, in log order. The first seq is that of the log's first retained entry (0 for
-- an empty log): beyond cursor + 1, the entries in between were trimmed by retention before the
-- thread got them.
local function thread_missing(thread)
  local cursor = tonumber(redis.call('HGET', K_CURSORS, thread) or '0')
  local out = {0, cursor, 0}
  local head = redis.call('XRANGE', K_LOG, '-', '+', 'COUNT', 1)
  if head[1] then
    out[3] = tonumber(string.match(head[1][1], '^(%d+)'))
  end
  local entries = redis.call('XRANGE', K_LOG, '(' .. cursor .. '-0', '+')
  for _, entry in ipairs(entries) do
    local f = {}
    local fields = entry[2]
    for i = 1, #fields, 2 do
      f[fields[i]] = fields[i + 1]
    end
    local seq = tonumber(string.match(entry[1], '^(%d+)'))
    out[1] = seq
    if f.origin ~= thread then
      out[#out + 1] = seq
      out[#out + 1] = f.role
      out[#out + 1] = f.content
      out[#out + 1] = f.origin
      out[#out + 1] = f.time
    end
  end
  if #entries == 0 then
    local tail = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
    if tail[1] then
      out[1] = tonumber(string.match(tail[1][1], '^(%d+)'))
    end
  end
  return out
end

-- Drop a holder's lease record (the caller has checked it is theirs).
local function unlease(thread)
  redis.call('ZREM', K_LEASES, thread)
  redis.call('HDEL', K_HOLDS, thread)
end

-- A free thread goes to the oldest live waiter, else back to the idle set, scored by its log
-- cursor (``score`` only for a thread without one), so the thread with least to catch up is
-- handed out first. A pool that was shrunk below its thread count retires the thread instead (it
-- may still exist upstream).
local function handoff(thread, score)
  -- One read of the meta for the size, the drain and a grant's TTL (this is the release path).
  local m = redis.call('HMGET', K_META, 'max_size', 'draining', 'ttl_ms')
  if redis.call('HLEN', K_THREADS) > tonumber(m[1]) then
    redis.call('HDEL', K_THREADS, thread)
    redis.call('RPUSH', K_RETIRED, thread)
    return 'RETIRED'
  end
  -- A draining pool serves nobody new: its waiters were sent away when the drain began.
  local draining = m[2]
  while not draining do
    local entry = redis.call('LPOP', K_WAITERS)
    if not entry then
      break
    end
    local ticket, deadline_s, holder = split3(entry)
    local wait_deadline = tonumber(deadline_s)
    if wait_deadline > NOW then
      local fence, deadline, ttl = grant(thread, ticket, holder, tonumber(m[3]))
      deliver(ticket, granted(thread, fence, deadline, ttl), wait_deadline)
      return 'HANDED'
    end
    -- A waiter whose deadline passed has given up (or died): skip it.
  end
  redis.call('ZADD', K_IDLE, tonumber(redis.call('HGET', K_CURSORS, thread)) or score, thread)
  return 'IDLE'
end

-- Wake the oldest live waiter to try again (a growth slot came free).
local function wake_one()
  while true do
    local entry = redis.call('LPOP', K_WAITERS)
    if not entry then
      return
    end
    local ticket, deadline_s = split3(entry)
    local wait_deadline = tonumber(deadline_s)
    if wait_deadline > NOW then
      deliver(ticket, 'R', wait_deadline)
      return
    end
  end
end

-- Wake every live waiter to ask again (a drain began: they will hear that the pool is draining).
local function wake_all()
  while redis.call('LLEN', K_WAITERS) > 0 do
    wake_one()
  end
end

-- Reclaim up to `limit` expired leases and stale settling claims, claiming them for `token` to
-- settle; drop expired growth reservations. Returns the claimed thread ids.
-- A lease is reclaimed `delay_ms` after its deadline, not at it (Chubby's "lock-delay"): its
-- holder may have been paused between its last check and a write, which then arrives late; in
-- that delay nobody else holds the thread, and the settling that follows cancels what it started.
local function claim_expired(limit, settle_ms, token, delay_ms)
  local claimed = {}
  local expired = redis.call('ZRANGE', K_LEASES, '-inf', NOW - delay_ms, 'BYSCORE', 'LIMIT', 0,
    limit)
  for _, thread in ipairs(expired) do
    -- A thread handed to a waiter that died sits unread in its mailbox: clear that too.
    local hold = redis.call('HGET', K_HOLDS, thread)
    if hold then
      drop_message(token_of(hold))
    end
    unlease(thread)
    redis.call('HINCRBY', K_META, 'reaped', 1)
    claimed[#claimed + 1] = thread
  end
  if #claimed < limit then
    local stale = redis.call('ZRANGE', K_SETTLING, '-inf', NOW, 'BYSCORE', 'LIMIT', 0,
      limit - #claimed)
    for _, thread in ipairs(stale) do
      claimed[#claimed + 1] = thread
    end
  end
  for _, thread in ipairs(claimed) do
    redis.call('ZADD', K_SETTLING, NOW + settle_ms, thread)
    redis.call('HSET', K_CLAIMS, thread, token)
  end
  if redis.call('ZREMRANGEBYSCORE', K_RESERVED, '-inf', NOW) > 0 then
    wake_one()
  end
  return claimed
end

-- Live waiters: queue entries whose deadline has not passed (dead ones are skipped on hand-off).
local function live_waiters()
  local n = 0
  for _, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
    local _, deadline_s = split3(entry)
    if tonumber(deadline_s) > NOW then
      n = n + 1
    end
  end
  return n
end

-- Milliseconds until the next lease can be reclaimed (`delay_ms` after it expires) or settling
-- claim lapses (-1: none). A waiter wakes
-- then to reclaim it, since nobody else may be calling acquire to do so.
local function next_expiry(delay_ms)
  local soonest = -1
  for set, after in pairs({[K_LEASES] = delay_ms, [K_SETTLING] = 0}) do
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[1] then
      local due = math.max(tonumber(first[2]) + after - NOW, 0)
      if soonest < 0 or due < soonest then
        soonest = due
      end
    end
  end
  return soonest
end
