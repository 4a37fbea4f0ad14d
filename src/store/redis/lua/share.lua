-- Set or remove one user's share of an open session.
-- KEYS: 1 session:{id}  2 shares:{id}
-- ARGV: 1 user (or '*')  2 access: 'read' or 'write', '' to remove the share
-- Returns 1, or 0 when there is no open session.
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
