-- configure: set a pool's sizes and lease TTL, creating the pool if needed.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] min_size  "" keeps the current value (or the default for a new pool)
-- ARGV[2] max_size
-- ARGV[3] ttl_ms
-- ARGV[4] default min_size, ARGV[5] default max_size, ARGV[6] default ttl_ms
-- ARGV[7] idle_expiry_ms  "" keeps it, "0" clears it (the maintainer's default applies), else
--         the pool is retired once idle that long (read by `maintain` and `gc`)
-- Returns {"OK", min_size, max_size, ttl_ms, retired} | {"BADSIZE", min_size, max_size}
-- Shrinking below the thread count retires idle threads now (least caught-up first); leased ones
-- retire when they are released.
ensure_pool('1', ARGV[4], ARGV[5], ARGV[6])
local function pick(arg, field)
  if arg ~= '' then
    return tonumber(arg)
  end
  return meta_number(field)
end
local min_size, max_size, ttl_ms = pick(ARGV[1], 'min_size'), pick(ARGV[2], 'max_size'),
  pick(ARGV[3], 'ttl_ms')
if min_size > max_size then
  return {'BADSIZE', min_size, max_size}
end
redis.call('HSET', K_META, 'min_size', min_size, 'max_size', max_size, 'ttl_ms', ttl_ms)
if ARGV[7] == '0' then
  redis.call('HDEL', K_META, 'idle_expiry_ms')
elseif ARGV[7] ~= nil and ARGV[7] ~= '' then
  redis.call('HSET', K_META, 'idle_expiry_ms', ARGV[7])
end
local retired = 0
while redis.call('HLEN', K_THREADS) > max_size do
  local worst = redis.call('ZPOPMIN', K_IDLE)
  if not worst[1] then
    break
  end
  redis.call('HDEL', K_THREADS, worst[1])
  redis.call('RPUSH', K_RETIRED, worst[1])
  retired = retired + 1
end
return {'OK', min_size, max_size, ttl_ms, retired}
