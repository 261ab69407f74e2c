-- log_append: append one turn (or one piece of appended context) to the pool's log, once.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] id      the turn's id; an id already logged appends nothing (a retried append is safe)
-- ARGV[2] origin  the thread the turn ran on ("" for context appended by a caller)
-- ARGV[3] seen    seq of the log's last entry when the turn read what its thread was missing
-- ARGV[4] run     the run (response) id that produced the reply ("" for appended context)
-- ARGV[5] keep    retention: the log keeps only its newest <keep> entries ("0": no limit); the
--                 older ones are trimmed here, in the same call (XTRIM MINID on the <seq>-0 ids)
-- ARGV[6] epoch   the pool's epoch as the caller saw it before ("": never seen it)
-- ARGV[7] max_age retention by age, in ms ("0": none): entries older than that are trimmed here
--                 too (a bounded number per call, oldest first)
-- ARGV[8..] role, content pairs, in order
-- The idempotency record of an append (K_LOGGED) goes with its last entry: trimmed together, so
-- neither grows without bound. (A retry of an append whose entries were all trimmed already
-- would append it again; retries come within seconds, trims only after log_max_entries more
-- entries or log_max_age.)
-- Returns "OK|<last seq>" | "DUP|<last seq of the earlier append>" | "LOSTSTATE|<ms>"
--   LOSTSTATE: the pool's state is gone from Redis (see lost_state); nothing was written, so a
--   turn finishing after a restart cannot start a fresh log that looks like the old one.
local id, origin, seen, run = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local keep, max_age = tonumber(ARGV[5]), tonumber(ARGV[7])
local lost = lost_state(redis.call('HMGET', K_META, 'epoch', 'state_lost', 'recovered'), ARGV[6])
if lost then
  return 'LOSTSTATE|' .. lost
end
local done = redis.call('HGET', K_LOGGED, id)
if done then
  return 'DUP|' .. done
end
-- Ids are "<seq>-0" with seq counting entries from 1, so a seq is a number a zset can score.
local last = 0
local tail = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
if tail[1] then
  last = tonumber(string.match(tail[1][1], '^(%d+)'))
end
local before = last
for i = 8, #ARGV - 1, 2 do
  last = last + 1
  redis.call('XADD', K_LOG, last .. '-0', 'role', ARGV[i], 'content', ARGV[i + 1],
    'origin', origin, 'run', run, 'turn', id, 'time', NOW)
end
redis.call('HSET', K_LOGGED, id, last)
-- What retention drops: the entries before the newest <keep>, then the oldest entries older
-- than max_age; at most TRIM_BATCH of each per call (a log that retention was just turned on for
-- is trimmed over the next appends, not in one long call). Only the entries to drop are read.
local TRIM_BATCH = 200
local upto, turns = 0, {}
-- One field of a stream entry (its fields are a flat name, value list), or nil.
local function field(entry, name)
  local fields = entry[2]
  for f = 1, #fields - 1, 2 do
    if fields[f] == name then
      return fields[f + 1]
    end
  end
  return nil
end
local function drop(entry)
  upto = tonumber(string.match(entry[1], '^(%d+)'))
  local turn = field(entry, 'turn')
  if turn then
    turns[#turns + 1] = turn
  end
end
if keep > 0 and last > keep then
  for _, entry in ipairs(redis.call('XRANGE', K_LOG, '-', (last - keep) .. '-0',
      'COUNT', TRIM_BATCH)) do
    drop(entry)
  end
end
if max_age > 0 then
  local from = '-'
  if upto > 0 then
    from = '(' .. upto .. '-0'
  end
  local checked = 0
  while checked < TRIM_BATCH do
    local entries = redis.call('XRANGE', K_LOG, from, '+', 'COUNT', 10)
    local young = #entries == 0
    for _, entry in ipairs(entries) do
      local when = tonumber(field(entry, 'time'))
      if when == nil or when >= NOW - max_age then
        young = true
        break
      end
      drop(entry)
      checked = checked + 1
    end
    if young then
      break
    end
    from = '(' .. upto .. '-0'
  end
end
if upto > 0 then
  -- A thread whose cursor falls before the first kept entry is told how many it lost
  -- (see log_missing.lua and context.retention_marker), never left with a silent gap.
  redis.call('XTRIM', K_LOG, 'MINID', (upto + 1) .. '-0')
  for _, turn in ipairs(turns) do
    local turn_last = tonumber(redis.call('HGET', K_LOGGED, turn) or '-1')
    if turn_last >= 0 and turn_last <= upto then
      redis.call('HDEL', K_LOGGED, turn)
    end
  end
end
-- A thread that left the pool for good (dropped, or deleted upstream after retirement) has no
-- cursor any more; a turn that ends after that must not give it one back.
if origin ~= '' and (redis.call('HEXISTS', K_THREADS, origin) == 1
    or redis.call('HEXISTS', K_CURSORS, origin) == 1) then
  -- The thread now holds everything up to what it read, plus its own entries. If nobody
  -- appended while the turn ran, that is the whole log; else the others' entries stay due.
  local cursor = tonumber(redis.call('HGET', K_CURSORS, origin) or '0')
  local moved = seen
  if before == seen then
    moved = last
  end
  if moved > cursor then
    redis.call('HSET', K_CURSORS, origin, moved)
  end
end
return 'OK|' .. last
