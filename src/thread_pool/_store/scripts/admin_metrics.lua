-- admin_metrics: what the metrics endpoint shows of one pool, in one call and without listing
-- leases or waiters (a scrape makes one such call per pool, so its cost must stay small).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- (no ARGV)
-- The loader wraps stats.lua's body as the local function stats_reply() ahead of this script, so
-- the counts here are exactly what stats() answers.
-- Returns {"NOPOOL"}, {"LOSTSTATE", ms} or {stats_reply, log_length, max_lag}
--   log_length  XLEN of the context log
--   max_lag     entries logged since the thread furthest behind last caught up (0: none)
local s = stats_reply()
if s[1] ~= 'OK' then
  return s
end
local last_seq = 0
local tail = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
if tail[1] then
  last_seq = tonumber(string.match(tail[1][1], '^(%d+)'))
end
local worst = 0
local ids = redis.call('HKEYS', K_THREADS)
-- HMGET in slices: unpack() of a very large list would overflow Lua's stack.
for first = 1, #ids, 1000 do
  local slice = {}
  for i = first, math.min(first + 999, #ids) do
    slice[#slice + 1] = ids[i]
  end
  for _, cursor in ipairs(redis.call('HMGET', K_CURSORS, unpack(slice))) do
    local lag = last_seq - (tonumber(cursor) or 0)
    if lag > worst then
      worst = lag
    end
  end
end
return {s, redis.call('XLEN', K_LOG), worst}
