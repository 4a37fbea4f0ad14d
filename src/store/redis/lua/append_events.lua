-- Append events to the log: each gets the next id from the counter and goes to the stream
-- as entry `<id>-0`, trimmed approximately (whole nodes) to about `keep` entries. One
-- script, so the ids of two processes' appends never interleave out of order.
-- KEYS: 1 events (stream)  2 events:seq (counter)
-- ARGV: 1 keep  2 the channel told the newest id (PUBLISH)  3.. the bodies, in order
-- Returns the ids assigned, as strings.
local n = tonumber(redis.call('GET', KEYS[2]))
if not n then
  -- No counter (a new log, or one whose counter was lost): go on from the stream's last id,
  -- so XADD never refuses an id at or below it.
  n = 0
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if last[1] then
    n = tonumber(string.match(last[1][1], '^(%d+)'))
  end
end
local ids = {}
for i = 3, #ARGV do
  n = n + 1
  local id = string.format('%d', n)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id .. '-0', 'body', ARGV[i])
  ids[#ids + 1] = id
end
redis.call('SET', KEYS[2], string.format('%d', n))
-- Wakes the readers of every process at once (they read the stream for the events).
redis.call('PUBLISH', ARGV[2], string.format('%d', n))
return ids
