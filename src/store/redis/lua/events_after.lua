-- Read the event log: the newest id ever assigned, the oldest id kept, and the events from
-- id `from` on (at most `limit`), as one consistent read.
-- KEYS: 1 events (stream)  2 events:seq (counter)
-- ARGV: 1 from (the first id wanted)  2 limit (0: no events, only the bounds)
-- Returns {newest, oldest ('' when the log is empty), id1, body1, id2, body2, ...}.
local newest = redis.call('GET', KEYS[2]) or '0'
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = ''
if first[1] then
  oldest = string.match(first[1][1], '^(%d+)')
end
local out = {newest, oldest}
if ARGV[2] ~= '0' then
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])) do
    local body = ''
    local fields = e[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'body' then
        body = fields[i + 1]
      end
    end
    out[#out + 1] = string.match(e[1], '^(%d+)')
    out[#out + 1] = body
  end
end
return out
