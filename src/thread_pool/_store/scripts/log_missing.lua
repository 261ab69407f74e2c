-- log_missing: what a thread is missing from the pool's log, read in one round trip.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- Returns {last seq, cursor, first seq, then per missing entry: seq, role, content, origin,
-- time}: the entries after the thread's cursor that it did not make itself, in log order. The
-- first seq is that of the log's first retained entry (0 for an empty log): beyond
-- cursor + 1, the entries in between were trimmed by retention before the thread got them.
local thread = ARGV[1]
local cursor = tonumber(redis.call('HGET', K_CURSORS, thread) or '0')
local out = {0, cursor, 0}
local head = redis.call('XRANGE', K_LOG, '-', '+', 'COUNT', 1)
if head[1] then
  out[3] = tonumber(string.match(head[1][1], '^(%d+)'))
end
local entries = redis.call('XRANGE', K_LOG, '(' .. cursor .. '-0', '+')
for _, entry in ipairs(entries) do
  local f = {}
  local fields = entry[2]
  for i = 1, #fields, 2 do
    f[fields[i]] = fields[i + 1]
  end
  local seq = tonumber(string.match(entry[1], '^(%d+)'))
  out[1] = seq
  if f.origin ~= thread then
    out[#out + 1] = seq
    out[#out + 1] = f.role
    out[#out + 1] = f.content
    out[#out + 1] = f.origin
    out[#out + 1] = f.time
  end
end
if #entries == 0 then
  local tail = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', 1)
  if tail[1] then
    out[1] = tonumber(string.match(tail[1][1], '^(%d+)'))
  end
end
return out
