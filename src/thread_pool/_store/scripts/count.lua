-- count: bump one of a pool's event counters (e.g. lock_errors: upstream said a thread was busy,
-- which the pool exists to prevent; each one is a bug signal worth seeing in stats).
-- KEYS: the pool's keys (see _common.lua)
-- ARGV[1] counter name
-- Returns {"OK", new value}
return {'OK', redis.call('HINCRBY', K_META, ARGV[1], 1)}
