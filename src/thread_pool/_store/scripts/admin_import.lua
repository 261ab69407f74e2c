-- admin_import: write back one pool from a backup, all of it or nothing.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] JSON list of {name, type, data} as admin_export returned them (data flat, all text;
--         a stream's data is {{id, {field, value, ...}}, ...})
-- ARGV[2] mode         "recover" (the default of the command line) or "exact"
-- ARGV[3] exported_ms  when the backup was taken (Redis time of the export)
-- ARGV[4] limits       "fence_limit|max_age_ms|skew_ms|per_ms|max_size|max_ttl_ms|max_fields"
--                      (limits.py)
-- ARGV[5] check_only   "1": check the backup and write nothing (the caller checks every pool
--                      of a file before it writes the first)
-- Returns {"OK", keys_written} | {"EXISTS"} (nothing written: the pool is there already)
--   | {"INVALID", why} (nothing written: the backup is malformed; backup.py checks the same)
-- The caller has claimed the pool's threads for it (see owners.lua).
--
-- Everything is checked before the first write: a script that fails half-way keeps what it
-- wrote (Redis has no rollback), and a pool half restored would exist but could not lease.
--
-- A pool marked lost (see lost_state) is replaced; the threads its lost state had gained (grown
-- by callers who did not know the pool had been lost) are kept on the retired list, so that
-- purge_retired or delete can still remove them upstream: no thread is forgotten.
--
-- "exact" writes the backup verbatim, leases and all: right for a pool moved while nobody used
-- it. "recover" treats the backup as an old picture of a pool that lived on after it was taken:
--   * every fence goes up by per_ms (1000) per millisecond since the export. A grant takes at
--     least two script calls on the thread (grant, then release or reap), and Redis runs well
--     under one script per microsecond, so no thread can have been granted that often since the
--     backup: every fence granted from now on is above every fence used before (stamped
--     upstream as tp_fence, it never goes backwards on a thread). The export is at most
--     max_age_ms old and every fence stays below fence_limit (2^52), or nothing is written;
--   * the leases, waiters, reservations and settling claims of the backup are void (their
--     holders have moved on; a holder still running gets LeaseLost), and every thread goes to
--     be settled before it is handed out: any of them may have a run that was started after
--     the backup still active upstream.
local exists = redis.call('EXISTS', K_META) == 1
local lost = exists and redis.call('HGET', K_META, 'state_lost')
if exists and not lost then
  return {'EXISTS'}
end
local mode = ARGV[2]
local limit_s = {}
for part in string.gmatch(ARGV[4], '[^|]+') do
  limit_s[#limit_s + 1] = tonumber(part)
end
local FENCE_LIMIT, MAX_AGE, SKEW, PER_MS, MAX_SIZE, MAX_TTL, MAX_FIELDS = unpack(limit_s)

local SCHEMA = {meta = 'hash', threads = 'hash', idle = 'zset', leases = 'zset', holds = 'hash',
  settling = 'zset', waiters = 'list', reserved = 'zset', retired = 'list', claims = 'hash',
  inflight = 'hash', log = 'stream', logged = 'hash', cursors = 'hash'}

-- Integer text below `below` (default 2^53): plain digits, no sign, exponent or leading zero.
local function int_of(s, below)
  if type(s) ~= 'string' or #s > 16 or not string.match(s, '^%d+$')
      or (#s > 1 and string.sub(s, 1, 1) == '0') then
    return nil
  end
  local n = tonumber(s)
  if n >= (below or 9007199254740992) then
    return nil
  end
  return n
end

local function score_of(s)
  if type(s) ~= 'string' or #s > 32 or not string.match(s, '^%-?%d[%d%.eE%+%-]*$') then
    return nil
  end
  local n = tonumber(s)
  if not n or n ~= n or n == math.huge or n == -math.huge then
    return nil
  end
  return n
end

local function is_thread(s)
  return type(s) == 'string' and #s <= 128 and string.match(s, '^[%w_%.:%-]+$') ~= nil
end

-- A JSON array (cjson makes arrays and objects both tables: an array has keys 1..n only).
local function is_array(t)
  if type(t) ~= 'table' then
    return false
  end
  local n = 0
  for _ in pairs(t) do
    n = n + 1
  end
  return n == #t
end

-- A JSON array of text (an object, or anything not text inside, is not).
local function texts(t, even)
  if not is_array(t) or (even and #t % 2 == 1) then
    return false
  end
  for i = 1, #t do
    if type(t[i]) ~= 'string' then
      return false
    end
  end
  return true
end

-- field -> value of a flat hash or zset.
local function map_of(flat)
  local m = {}
  for i = 1, #(flat or {}), 2 do
    m[flat[i]] = flat[i + 1]
  end
  return m
end

-- The first problem of the backup, or nil; `data` gets name -> flat data.
local function problem(entries, data)
  if not is_array(entries) then
    return 'the keys are not a list'
  end
  for _, e in ipairs(entries) do
    if not is_array(e) or #e ~= 3 or type(e[1]) ~= 'string' or not SCHEMA[e[1]] then
      return 'an unknown key'
    end
    local name, kind, flat = e[1], e[2], e[3]
    if data[name] then
      return 'key ' .. name .. ' twice'
    end
    if kind ~= SCHEMA[name] then
      return 'key ' .. name .. ' has a bad type'
    end
    if kind == 'stream' then
      if not is_array(flat) then
        return 'key ' .. name .. ' is not a list of entries'
      end
      local last_ms, last_seq = 0, 0
      for _, item in ipairs(flat) do
        if not is_array(item) or #item ~= 2 or type(item[1]) ~= 'string'
            or not texts(item[2], true) or #item[2] == 0 or #item[2] > MAX_FIELDS then
          return 'key ' .. name .. ' has an entry that is not an id and pairs of fields'
        end
        local a, b = string.match(item[1], '^(%d+)%-(%d+)$')
        local ms, seq = int_of(a), int_of(b)
        if not ms or not seq or ms < last_ms or (ms == last_ms and seq <= last_seq) then
          return 'key ' .. name .. ' has an entry id out of order or malformed'
        end
        last_ms, last_seq = ms, seq
      end
    elseif not texts(flat, kind == 'hash' or kind == 'zset') then
      return 'key ' .. name .. ' holds a value that is not text, or an odd count'
    end
    data[name] = flat
  end
  local meta = data.meta
  if not meta then
    return 'no meta'
  end
  for i = 1, #meta, 2 do
    if not string.match(meta[i], '^[a-z][a-z_]*$') or #meta[i] > 64 then
      return 'meta field is not a name'
    end
    if meta[i] == 'state_lost' or meta[i] == 'lost_epoch' then
      return 'meta marks the pool lost'
    end
    if not int_of(meta[i + 1]) then
      return 'meta ' .. meta[i] .. ' is not an integer'
    end
  end
  local m = map_of(meta)
  local low, high, ttl = int_of(m.min_size), int_of(m.max_size), int_of(m.ttl_ms)
  if not low or not high or not ttl or high < 1 or high > MAX_SIZE or low > high or ttl < 1
      or ttl > MAX_TTL then
    return 'meta sizes or ttl missing or out of range'
  end
  local threads = map_of(data.threads)
  for thread, fence in pairs(threads) do
    if not is_thread(thread) or not int_of(fence, FENCE_LIMIT) then
      return 'threads: a bad thread id or fence'
    end
  end
  local state = {}
  for _, name in ipairs({'idle', 'leases', 'settling'}) do
    local flat = data[name] or {}
    for i = 1, #flat, 2 do
      local thread, score = flat[i], flat[i + 1]
      if not threads[thread] or state[thread] then
        return name .. ': ' .. thread .. ' is not a thread of the pool, or in two states'
      end
      state[thread] = name
      if (name == 'idle' and not score_of(score)) or (name ~= 'idle' and not int_of(score)) then
        return name .. ': a bad score'
      end
    end
  end
  local holds = map_of(data.holds)
  for thread in pairs(threads) do
    if not state[thread] then
      return 'thread ' .. thread .. ' is neither idle, leased nor settling'
    end
    if (state[thread] == 'leases') ~= (holds[thread] ~= nil) then
      return 'holds and leases do not name the same threads'
    end
  end
  for thread, hold in pairs(holds) do
    local token, fence, at = string.match(hold, '^([^|]+)|([^|]*)|([^|]*)|')
    if not threads[thread] or not token or not int_of(fence, FENCE_LIMIT) or not int_of(at) then
      return 'holds: ' .. thread .. ' is not token|fence|acquired|holder'
    end
  end
  for thread, token in pairs(map_of(data.claims)) do
    if state[thread] ~= 'settling' or token == '' then
      return 'claims: a claim on a thread that is not settling'
    end
  end
  local reserved = data.reserved or {}
  local seen = {}
  for i = 1, #reserved, 2 do
    if seen[reserved[i]] or not int_of(reserved[i + 1]) then
      return 'reserved: a bad reservation'
    end
    seen[reserved[i]] = true
  end
  for _, entry in ipairs(data.waiters or {}) do
    local ticket, deadline = string.match(entry, '^([^|]+)|([^|]*)|')
    if not ticket or not int_of(deadline) then
      return 'waiters: an entry is not ticket|deadline|holder'
    end
  end
  for _, thread in ipairs(data.retired or {}) do
    if not is_thread(thread) or threads[thread] then
      return 'retired: a bad thread id, or a thread both in the pool and retired'
    end
  end
  for _, record in pairs(map_of(data.inflight)) do
    if not int_of(string.match(record, '^([^|]*)|')) then
      return 'inflight: a record is not fence|id'
    end
  end
  for _, name in ipairs({'logged', 'cursors'}) do
    for _, seq in pairs(map_of(data[name])) do
      if not int_of(seq) then
        return name .. ': a seq is not an integer'
      end
    end
  end
  local exported = int_of(ARGV[3])
  if not exported or exported > NOW + SKEW or exported < NOW - MAX_AGE then
    return 'exported_at is missing, in the future or too old'
  end
  if mode == 'recover' then
    local gap = math.max(NOW - exported, 1) * PER_MS
    for thread, fence in pairs(threads) do
      if tonumber(fence) + gap >= FENCE_LIMIT then
        return 'thread ' .. thread .. ': its fence would pass the limit after the recovery'
      end
    end
  elseif mode ~= 'exact' then
    return 'unknown mode'
  end
  return nil
end

local ok, entries = pcall(cjson.decode, ARGV[1])
local data = {}
local why = 'the keys are not JSON'
if ok then
  why = problem(entries, data)
end
if why then
  return {'INVALID', why}
end
if ARGV[5] == '1' then
  return {'OK', 0}
end

-- From here on the backup is known good: write it.
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
  local name, kind, flat = BASE .. entry[1], entry[2], entry[3]
  redis.call('DEL', name)
  if kind == 'hash' then
    write('HSET', name, flat, 1000)
  elseif kind == 'zset' then
    write('ZADD', name, swapped(flat), 1000)
  elseif kind == 'list' then
    write('RPUSH', name, flat, 1000)
  elseif kind == 'stream' then
    for _, item in ipairs(flat) do
      redis.call('XADD', name, item[1], unpack(item[2]))
    end
  end
  written = written + 1
end
for _, thread in ipairs(stray) do
  if redis.call('HEXISTS', K_THREADS, thread) == 0 then
    redis.call('RPUSH', K_RETIRED, thread)
  end
end
if mode == 'recover' then
  local gap = math.max(NOW - tonumber(ARGV[3]), 1) * PER_MS
  local fences = redis.call('HGETALL', K_THREADS)
  for i = 1, #fences, 2 do
    redis.call('HSET', K_THREADS, fences[i], int_text(tonumber(fences[i + 1]) + gap))
    redis.call('ZADD', K_SETTLING, NOW, fences[i])
  end
  redis.call('DEL', K_IDLE, K_LEASES, K_HOLDS, K_WAITERS, K_RESERVED, K_CLAIMS)
end
if lost or mode == 'recover' then
  mark_recovered()
end
return {'OK', written}
