-- Create a session record; with a name, reuse the owner's open session of that name instead.
-- KEYS: 1 session:{id}  2 sessions  3 open  4 names:{owner}  5 owned:{owner}
-- ARGV: 1 id  2 created_at  3 name ('' for none)  4 key prefix  5.. field value pairs
-- Returns {'new'}, {'existing', n, the n items of its shares hash (user, access, ...), field,
-- value, ...} (the owner's open session of the name), or {'id_taken'}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'id_taken'}
end
local name = ARGV[3]
if name ~= '' then
  local holder = redis.call('HGET', KEYS[4], name)
  if holder then
    local existing = redis.call('HGETALL', ARGV[4] .. 'session:' .. holder)
    if #existing > 0 then
      local shares = redis.call('HGETALL', ARGV[4] .. 'shares:' .. holder)
      local reply = {'existing', tostring(#shares)}
      for _, v in ipairs(shares) do
        table.insert(reply, v)
      end
      for _, v in ipairs(existing) do
        table.insert(reply, v)
      end
      return reply
    end
  end
  redis.call('HSET', KEYS[4], name, ARGV[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return {'new'}
