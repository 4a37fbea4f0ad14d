-- Renew (until > 0) or give back (until = '') the lease `holder` holds on a session.
-- KEYS: 1 session:{id}
-- ARGV: 1 holder  2 until ('' to give it back)
-- Returns 1 when `holder` held it, else 0.
if redis.call('HGET', KEYS[1], 'lease_holder') ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'lease_holder', 'lease_until')
else
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
end
return 1
