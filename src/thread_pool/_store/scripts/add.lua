-- add: register existing upstream threads with a pool (idle, or straight to waiters).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] create    "1" to create the pool if it is missing
-- ARGV[2] min_size  defaults for a pool created here
-- ARGV[3] max_size
-- ARGV[4] ttl_ms
-- ARGV[5..] thread ids
-- Returns {"OK", added} | {"FULL", size, max_size} | {"NOPOOL"}
if not ensure_pool(ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return {'NOPOOL'}
end
local new = {}
for i = 5, #ARGV do
  if redis.call('HEXISTS', K_THREADS, ARGV[i]) == 0 then
    new[#new + 1] = ARGV[i]
  end
end
local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
local max_size = meta_number('max_size')
if size + #new > max_size then
  return {'FULL', size, max_size}
end
for _, thread in ipairs(new) do
  redis.call('HSET', K_THREADS, thread, 0)
  handoff(thread, 0)
end
return {'OK', #new}
