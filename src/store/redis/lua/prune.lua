-- Delete up to `batch` sessions closed at or before `closed_before`, with their history and
-- shares.
-- KEYS: 1 closed  2 sessions  3 running
-- ARGV: 1 closed_before  2 batch  3 key prefix
-- Returns how many were deleted.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local p = ARGV[3]
for _, id in ipairs(ids) do
  redis.call('DEL', p .. 'session:' .. id, p .. 'history:' .. id, p .. 'running:' .. id,
    p .. 'shares:' .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('SREM', KEYS[3], id)
end
return #ids
