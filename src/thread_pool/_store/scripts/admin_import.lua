-- admin_import: write back one pool from a backup, all of it or nothing.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] JSON list of {name, type, data} as admin_export returned them (data flat, all text;
--         a stream's data is {{id, {field, value, ...}}, ...}); the caller checked the names
-- ARGV[2] mode         "recover" (the default of the command line) or "exact"
-- ARGV[3] exported_ms  when the backup was taken (Redis time of the export)
-- Returns {"OK", keys_written} | {"EXISTS"} (nothing written: the pool is there already)
--
-- A pool marked lost (see lost_state) is replaced; the threads its lost state had gained (grown
-- by callers who did not know the pool had been lost) are kept on the retired list, so that
-- purge_retired or delete can still remove them upstream: no thread is forgotten.
--
-- "exact" writes the backup verbatim, leases and all: right for a pool moved while nobody used
-- it. "recover" treats the backup as an old picture of a pool that lived on after it was taken:
--   * every fence goes up by 1000 per millisecond since the export. A grant takes at least two
--     script calls on the thread (grant, then release or reap), and Redis runs well under one
--     script per microsecond, so no thread can have been granted that often since the backup:
--     every fence granted from now on is above every fence used before (stamped upstream as
--     tp_fence, it never goes backwards on a thread);
--   * the leases, waiters, reservations and settling claims of the backup are void (their
--     holders have moved on; a holder still running gets LeaseLost), and every thread goes to
--     be settled before it is handed out: any of them may have a run that was started after
--     the backup still active upstream.
local exists = redis.call('EXISTS', K_META) == 1
local lost = exists and redis.call('HGET', K_META, 'state_lost')
if exists and not lost then
  return {'EXISTS'}
end
local entries = cjson.decode(ARGV[1])
local mode, exported_ms = ARGV[2], tonumber(ARGV[3])
local all_keys = {K_META, K_THREADS, K_IDLE, K_LEASES, K_HOLDS, K_SETTLING, K_WAITERS,
  K_RESERVED, K_RETIRED, K_CLAIMS, K_INFLIGHT, K_LOG, K_LOGGED, K_CURSORS}
local stray = {}
if lost then
  local known = redis.call('HKEYS', K_THREADS)
  for _, thread in ipairs(redis.call('LRANGE', K_RETIRED, 0, -1)) do
    known[#known + 1] = thread
  end
  stray = known
  for _, name in ipairs(all_keys) do
    redis.call('DEL', name)
  end
end
-- Write in slices: unpack() of a very large table would overflow Lua's C stack.
local function write(cmd, name, flat, step)
  for i = 1, #flat, step do
    redis.call(cmd, name, unpack(flat, i, math.min(i + step - 1, #flat)))
  end
end
-- ZADD takes score before member; the backup holds member, score.
local function swapped(flat)
  local out = {}
  for i = 1, #flat, 2 do
    out[#out + 1] = flat[i + 1]
    out[#out + 1] = flat[i]
  end
  return out
end
local written = 0
for _, entry in ipairs(entries) do
  local name, kind, data = BASE .. entry[1], entry[2], entry[3]
  redis.call('DEL', name)
  if kind == 'hash' then
    write('HSET', name, data, 1000)
  elseif kind == 'zset' then
    write('ZADD', name, swapped(data), 1000)
  elseif kind == 'list' then
    write('RPUSH', name, data, 1000)
  elseif kind == 'set' then
    write('SADD', name, data, 1000)
  elseif kind == 'string' then
    redis.call('SET', name, data[1])
  elseif kind == 'stream' then
    for _, item in ipairs(data) do
      redis.call('XADD', name, item[1], unpack(item[2]))
    end
  else
    return redis.error_reply('cannot restore ' .. name .. ' of type ' .. tostring(kind))
  end
  written = written + 1
end
for _, thread in ipairs(stray) do
  if redis.call('HEXISTS', K_THREADS, thread) == 0 then
    redis.call('RPUSH', K_RETIRED, thread)
  end
end
if mode == 'recover' then
  local gap = math.max(NOW - exported_ms, 1) * 1000
  local fences = redis.call('HGETALL', K_THREADS)
  for i = 1, #fences, 2 do
    redis.call('HSET', K_THREADS, fences[i], tonumber(fences[i + 1]) + gap)
    redis.call('ZADD', K_SETTLING, NOW, fences[i])
  end
  redis.call('DEL', K_IDLE, K_LEASES, K_HOLDS, K_WAITERS, K_RESERVED, K_CLAIMS)
end
if lost or mode == 'recover' then
  mark_recovered()
end
return {'OK', written}
