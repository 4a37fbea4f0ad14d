-- Bring layout 1 under a prefix to layout 2: the one names hash of every owner split into
-- a names hash per owner, and each owner's open sessions in a set of their own. Nothing is
-- done unless the layout is 1 (another process may have migrated it first).
-- KEYS: 1 schema  2 names (layout 1)  3 open
-- ARGV: 1 key prefix  2 the new version
-- Returns the layout version now.
local v = redis.call('GET', KEYS[1])
if v ~= '1' then
  return v
end
local p = ARGV[1]
local names = redis.call('HGETALL', KEYS[2])
for i = 1, #names, 2 do
  local s = redis.call('HMGET', p .. 'session:' .. names[i + 1], 'owner', 'status')
  if s[1] and s[2] == 'open' then
    redis.call('HSET', p .. 'names:' .. s[1], names[i], names[i + 1])
  end
end
redis.call('DEL', KEYS[2])
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local owner = redis.call('HGET', p .. 'session:' .. id, 'owner')
  if owner then
    redis.call('SADD', p .. 'owned:' .. owner, id)
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
