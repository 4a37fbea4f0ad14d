-- Complete a command: its entry replaced in place (when still kept), the last activity, last
-- command and result, the state when given (bumping its version), and the lease given back
-- when the holder has it.
-- KEYS: 1 session:{id}  2 history:{id}  3 open  4 running:{id}  5 running
-- ARGV: 1 id  2 holder  3 seq  4 now  5 entry JSON  6 last command  7 last result JSON
--       8 '1' when a state follows, else '0'  9 state JSON
-- Returns 1, or 0 when the session is gone.
local s = redis.call('HMGET', KEYS[1], 'status', 'seq', 'lease_holder')
if not s[1] then
  return 0
end
local seq = tonumber(ARGV[3])
local len = redis.call('LLEN', KEYS[2])
local index = len - 1 - (tonumber(s[2] or '0') - seq)
if index >= 0 and index < len then
  redis.call('LSET', KEYS[2], index, ARGV[5])
end
redis.call('HDEL', KEYS[4], ARGV[3])
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[1])
end
redis.call('HSET', KEYS[1], 'last_activity', ARGV[4], 'last_command', ARGV[6], 'last_result', ARGV[7])
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[1], 'state', ARGV[9])
  redis.call('HINCRBY', KEYS[1], 'state_version', 1)
end
if s[3] == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'lease_holder', 'lease_until')
end
if s[1] == 'open' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return 1
