-- Overwrite an open session's state (bumping its version) and its last activity.
-- KEYS: 1 session:{id}  2 open
-- ARGV: 1 id  2 now  3 state JSON
-- Returns 1, or 0 when there is no open session.
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'last_activity', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'state_version', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
