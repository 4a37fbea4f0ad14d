-- Append a history entry to an open session, its sequence number from the record's `seq`
-- counter; the list keeps the newest `limit` entries. With a holder, the entry is a command
-- about to be sent: the session's lease is taken for the holder first (free, expired, or
-- its own), and the entry is marked running under that holder.
-- KEYS: 1 session:{id}  2 history:{id}  3 open  4 running:{id}  5 running
-- ARGV: 1 id  2 now  3 entry JSON without its seq (an object)  4 limit
--       5 holder ('' for an entry already complete)  6 lease until
-- Returns {'started', seq, state_version}, {'leased', holder, until}, {'closed'} or
-- {'missing'}.
local s = redis.call('HMGET', KEYS[1], 'status', 'lease_holder', 'lease_until', 'state_version')
if not s[1] then
  return {'missing'}
end
if s[1] ~= 'open' then
  return {'closed'}
end
local holder = ARGV[5]
if holder ~= '' then
  if s[2] and s[2] ~= holder and tonumber(s[3]) > tonumber(ARGV[2]) then
    return {'leased', s[2], s[3]}
  end
  redis.call('HSET', KEYS[1], 'lease_holder', holder, 'lease_until', ARGV[6])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local limit = tonumber(ARGV[4])
if limit > 0 then
  local rest = string.sub(ARGV[3], 2)
  local sep = ','
  if rest == '}' then
    sep = ''
  end
  redis.call('RPUSH', KEYS[2], '{"seq":' .. seq .. sep .. rest)
  redis.call('LTRIM', KEYS[2], -limit, -1)
  if holder ~= '' then
    redis.call('HSET', KEYS[4], seq, holder)
    redis.call('SADD', KEYS[5], ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'last_activity', ARGV[2], 'kept', redis.call('LLEN', KEYS[2]))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return {'started', seq, s[4] or '0'}
