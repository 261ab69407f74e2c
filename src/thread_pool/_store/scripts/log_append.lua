-- log_append: append one turn (or one piece of appended context) to the pool's log, once.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] id      the turn's id; an id already logged appends nothing (a retried append is safe)
-- ARGV[2] origin  the thread the turn ran on ("" for context appended by a caller)
-- ARGV[3] seen    seq of the log's last entry when the turn read what its thread was missing
-- ARGV[4] run     the run (response) id that produced the reply ("" for appended context)
-- ARGV[5] keep    retention: the log keeps only its newest <keep> entries ("0": no limit); the
--                 older ones are trimmed here, in the same call (XTRIM MINID on the <seq>-0 ids)
-- ARGV[6] epoch   the pool's epoch as the caller saw it before ("": never seen it)
-- ARGV[7..] role, content pairs, in order
-- Returns "OK|<last seq>" | "DUP|<last seq of the earlier append>" | "LOSTSTATE|<ms>"
--   LOSTSTATE: the pool's state is gone from Redis (see lost_state); nothing was written, so a
--   turn finishing after a restart cannot start a fresh log that looks like the old one.
local id, origin, seen, run = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local keep = tonumber(ARGV[5])
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
for i = 7, #ARGV - 1, 2 do
  last = last + 1
  redis.call('XADD', K_LOG, last .. '-0', 'role', ARGV[i], 'content', ARGV[i + 1],
    'origin', origin, 'run', run, 'turn', id, 'time', NOW)
end
redis.call('HSET', K_LOGGED, id, last)
if keep > 0 and last > keep then
  -- A thread whose cursor falls before the first kept entry is told how many it lost
  -- (see log_missing.lua and context.retention_marker), never left with a silent gap.
  redis.call('XTRIM', K_LOG, 'MINID', (last - keep + 1) .. '-0')
end
if origin ~= '' then
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
