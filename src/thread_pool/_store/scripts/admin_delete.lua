-- admin_delete: remove one pool from Redis, returning the threads it knew (to delete upstream).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1..] the names of the pool's keys after its base ("meta", "threads", ... from keys.py)
-- Returns {"NOPOOL"} or {"OK", thread...}: every thread id of the pool and of its retired list.
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
-- Mailboxes of waiters and of hand-offs not yet read go too (they would expire anyway).
for _, entry in ipairs(redis.call('LRANGE', K_WAITERS, 0, -1)) do
  redis.call('DEL', mailbox(split3(entry)))
end
for _, hold in ipairs(redis.call('HVALS', K_HOLDS)) do
  redis.call('DEL', mailbox(token_of(hold)))
end
for i = 1, #ARGV do
  redis.call('DEL', BASE .. ARGV[i])
end
return out
