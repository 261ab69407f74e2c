-- add: register existing upstream threads with a pool (idle, or straight to waiters).
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] create    "1" to create the pool if it is missing
-- ARGV[2] min_size  defaults for a pool created (or revived) here
-- ARGV[3] max_size
-- ARGV[4] ttl_ms
-- ARGV[5] per_ms    limits.FENCES_PER_MS (see fence_floor)
-- ARGV[6..] thread ids (the caller has claimed them for this pool, see owners.lua)
-- Returns {"OK", added} | {"FULL", size, max_size} | {"NOPOOL"}
-- A pool marked lost (see lost_state) is revived: re-adding the threads it had is how an
-- operator without a backup (or an API key) brings it back. Its threads, and a thread a shrink
-- had retired, start at fence_floor: their grants before are not recorded, and a fence never
-- goes down for a thread id. Nothing is written when the reply is FULL or NOPOOL.
local lost = redis.call('HEXISTS', K_META, 'state_lost') == 1
if not lost and redis.call('EXISTS', K_META) == 0 and ARGV[1] ~= '1' then
  return {'NOPOOL'}
end
local new = {}
for i = 6, #ARGV do
  if redis.call('HEXISTS', K_THREADS, ARGV[i]) == 0 then
    new[#new + 1] = ARGV[i]
  end
end
local size = redis.call('HLEN', K_THREADS) + redis.call('ZCARD', K_RESERVED)
local max_size = meta_number('max_size') or tonumber(ARGV[3])
if size + #new > max_size then
  return {'FULL', size, max_size}
end
local floor = fence_floor(ARGV[5])
local forced = lost or redis.call('HEXISTS', K_META, 'recovered') == 1
if lost then
  revive(ARGV[2], ARGV[3], ARGV[4])
end
ensure_pool('1', ARGV[2], ARGV[3], ARGV[4])
for _, thread in ipairs(new) do
  enter(thread, floor, forced)
  handoff(thread, 0)
end
return {'OK', #new}
