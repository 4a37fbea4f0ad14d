-- Close an open session, exactly once whoever else closes it at the same time: the record
-- says closed, when and why, its lease and its name are freed, it leaves its owner's set.
-- KEYS: 1 session:{id}  2 open  3 closed  4 shares:{id}
-- ARGV: 1 id  2 now  3 reason  4 key prefix  [5 idle_before: close only if still idle, i.e.
--       last active at or before it and its lease free or expired at `now`]
-- Returns {n, the n items of its shares hash (user, access, ...), field, value, ...} of the
-- closed record, or an empty list when it was not open (or not idle any more).
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return {}
end
if ARGV[5] then
  local s = redis.call('HMGET', KEYS[1], 'last_activity', 'lease_holder', 'lease_until')
  if tonumber(s[1]) > tonumber(ARGV[5]) then
    return {}
  end
  if s[2] and tonumber(s[3]) > tonumber(ARGV[2]) then
    return {}
  end
end
redis.call('HSET', KEYS[1], 'status', 'closed', 'closed_at', ARGV[2], 'close_reason', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease_holder', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'owner', 'name')
if s[1] then
  local names = ARGV[4] .. 'names:' .. s[1]
  if s[2] and redis.call('HGET', names, s[2]) == ARGV[1] then
    redis.call('HDEL', names, s[2])
  end
  redis.call('SREM', ARGV[4] .. 'owned:' .. s[1], ARGV[1])
end
local shares = redis.call('HGETALL', KEYS[4])
local reply = {tostring(#shares)}
for _, v in ipairs(shares) do
  table.insert(reply, v)
end
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do
  table.insert(reply, v)
end
return reply
