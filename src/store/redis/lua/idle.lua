-- Ids of open sessions idle since `idle_before` or longer whose lease is free or expired.
-- KEYS: 1 open
-- ARGV: 1 idle_before  2 now  3 key prefix
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local idle = {}
local now = tonumber(ARGV[2])
for _, id in ipairs(ids) do
  local l = redis.call('HMGET', ARGV[3] .. 'session:' .. id, 'lease_holder', 'lease_until')
  if not l[1] or tonumber(l[2]) <= now then
    table.insert(idle, id)
  end
end
return idle
