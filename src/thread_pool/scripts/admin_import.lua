-- admin_import: write back one pool from a backup, all of it or nothing.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] JSON list of {name, type, data} as admin_export returned them (data flat, all text;
--         a stream's data is {{id, {field, value, ...}}, ...}); the caller checked the names
-- Returns {"OK", keys_written} | {"EXISTS"} (nothing written: the pool is there already)
if redis.call('EXISTS', K_META) == 1 then
  return {'EXISTS'}
end
local entries = cjson.decode(ARGV[1])
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
  local name, kind, data = BASE .. entry[1], entry[2], entry[3]
  redis.call('DEL', name)
  if kind == 'hash' then
    write('HSET', name, data, 1000)
  elseif kind == 'zset' then
    write('ZADD', name, swapped(data), 1000)
  elseif kind == 'list' then
    write('RPUSH', name, data, 1000)
  elseif kind == 'set' then
    write('SADD', name, data, 1000)
  elseif kind == 'string' then
    redis.call('SET', name, data[1])
  elseif kind == 'stream' then
    for _, item in ipairs(data) do
      redis.call('XADD', name, item[1], unpack(item[2]))
    end
  else
    return redis.error_reply('cannot restore ' .. name .. ' of type ' .. tostring(kind))
  end
  written = written + 1
end
return {'OK', written}
