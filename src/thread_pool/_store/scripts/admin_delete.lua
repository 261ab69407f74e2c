-- admin_delete: remove one pool from Redis, in two steps around the upstream deletes.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] step     "begin" or "end"
-- ARGV[2] force    "1": begin even while threads are leased or being grown
-- ARGV[3] idle_ms  "0", or begin only if no lease was granted for that long (idle-pool
--                  retirement: a pool used since it was found idle is kept)
-- ARGV[4..] the names of the pool's keys after its base ("meta", "threads", ... from keys.py)
-- Returns {"NOPOOL"} | {"BUSY", leased, growing} | {"USED", ms since last use} (begin only;
--   nothing changed)
--   | {"OK", thread...}: every thread id of the pool and of its retired list
-- "begin" marks the pool draining in the same step as it checks that nobody holds a thread, so
-- no caller can be granted a thread from here on: the upstream deletes that follow cannot cut
-- a holder off. (If they fail, the pool stays draining; a re-run carries on.) A pool whose state
-- was lost has no valid leases: it is never busy. "end" deletes every key.
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
local out = {'OK'}
for _, thread in ipairs(redis.call('HKEYS', K_THREADS)) do
  out[#out + 1] = thread
end
for _, thread in ipairs(redis.call('LRANGE', K_RETIRED, 0, -1)) do
  out[#out + 1] = thread
end
if ARGV[1] == 'begin' then
  local idle_ms = tonumber(ARGV[3])
  if idle_ms > 0 then
    local m = redis.call('HMGET', K_META, 'used_ms', 'created_ms')
    local since = NOW - tonumber(m[1] or m[2] or '0')
    if since < idle_ms then
      return {'USED', since}
    end
  end
  if ARGV[2] ~= '1' and redis.call('HEXISTS', K_META, 'state_lost') == 0 then
    redis.call('ZREMRANGEBYSCORE', K_RESERVED, '-inf', NOW)
    local leased, growing = redis.call('ZCARD', K_LEASES), redis.call('ZCARD', K_RESERVED)
    if leased + growing > 0 then
      return {'BUSY', leased, growing}
    end
  end
  redis.call('HSETNX', K_META, 'draining', NOW)
  wake_all()
  return out
end
-- Mailboxes of waiters and of hand-offs not yet read go too (they would expire anyway).
-- A shared box goes whole: every message in it is for this pool.
local function forget(ticket)
  redis.call('DEL', mailbox(ticket))
  local box = shared_box(ticket)
  if box then
    redis.call('DEL', box)
  end
end
for _, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
  forget(split3(entry))
end
for _, hold in ipairs(redis.call('HVALS', K_HOLDS)) do
  forget(token_of(hold))
end
for i = 4, #ARGV do
  redis.call('DEL', BASE .. ARGV[i])
end
return out
