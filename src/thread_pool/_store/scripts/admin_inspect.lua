-- admin_inspect: everything `thread-pool status` shows of one pool, as one consistent snapshot.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- (no ARGV)
-- The loader wraps stats.lua's body as the local function stats_reply() ahead of this script, so
-- the counts here are exactly what stats() answers.
-- Returns {"NOPOOL"} or {stats_reply, now_ms, draining, threads, holds, leases, settling, waiters,
--   retired, inflight, log_length, last_seq, cursors}
--   threads   flat HGETALL: thread id, fence, ...
--   holds     flat HGETALL: thread id, "token|fence|acquired_ms|holder", ...
--   leases    flat ZRANGE WITHSCORES: thread id, deadline_ms, ...
--   settling  flat ZRANGE WITHSCORES: thread id, claim deadline_ms, ...
--   waiters   LRANGE: "ticket|deadline_ms|holder", ...
--   retired   LRANGE: thread id, ...
--   inflight  flat HGETALL: thread id, "fence|id", ...
--   log_length  XLEN of the context log
--   last_seq    seq of the log's newest entry (0: empty)
--   cursors   flat HGETALL: thread id, seq of the last log entry it holds, ...
local s = stats_reply()
if s[1] ~= 'OK' then
  return s
end
local last_seq = 0
local tail = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
if tail[1] then
  last_seq = tonumber(string.match(tail[1][1], '^(%d+)'))
end
return {s, NOW, redis.call('HGET', K_META, 'draining') or '',
  redis.call('HGETALL', K_THREADS), redis.call('HGETALL', K_HOLDS),
  redis.call('ZRANGE', K_LEASES, 0, -1, 'WITHSCORES'),
  redis.call('ZRANGE', K_SETTLING, 0, -1, 'WITHSCORES'),
  redis.call('LRANGE', K_WAITERS, 0, -1), redis.call('LRANGE', K_RETIRED, 0, -1),
  redis.call('HGETALL', K_INFLIGHT), redis.call('XLEN', K_LOG), last_seq,
  redis.call('HGETALL', K_CURSORS)}
