-- admin_export: read every key of one pool at once, whatever its type, for a backup.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1..] the names of the pool's keys after its base ("meta", "threads", ... from keys.py)
-- Returns {"NOPOOL"}, {"LOSTSTATE", ms} (a lost pool is not backed up: see lost_state), or {"OK", now_ms, {name, type, data}...} for the keys that exist, with data
--   hash    flat field, value, ...         zset    flat member, score, ... (scores as text)
--   list    items in order                 set     members
--   string  the value                      stream  {id, {field, value, ...}}, ... (XRANGE)
-- Reading by type (not a fixed list) keeps a key added to the model later in the backup.
if redis.call('EXISTS', K_META) == 0 then
  return {'NOPOOL'}
end
local lost = redis.call('HGET', K_META, 'state_lost')
if lost then
  return {'LOSTSTATE', lost}
end
local out = {'OK', NOW}
for i = 1, #ARGV do
  local name = BASE .. ARGV[i]
  local kind = redis.call('TYPE', name)['ok']
  local data = nil
  if kind == 'hash' then
    data = redis.call('HGETALL', name)
  elseif kind == 'zset' then
    data = redis.call('ZRANGE', name, 0, -1, 'WITHSCORES')
  elseif kind == 'list' then
    data = redis.call('LRANGE', name, 0, -1)
  elseif kind == 'set' then
    -- SMEMBERS has no order (a restored set may list its members differently): sort them, so
    -- an export of the same pool is the same file.
    data = redis.call('SMEMBERS', name)
    table.sort(data)
  elseif kind == 'string' then
    data = {redis.call('GET', name)}
  elseif kind == 'stream' then
    data = redis.call('XRANGE', name, '-', '+')
  elseif kind ~= 'none' then
    return redis.error_reply('cannot back up ' .. name .. ' of type ' .. kind)
  end
  if data then
    out[#out + 1] = {ARGV[i], kind, data}
  end
end
return out
