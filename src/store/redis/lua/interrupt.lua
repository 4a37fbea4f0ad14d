-- Mark entries of one session interrupted, each only if it is still running under the
-- holder it was read with and that holder holds no unexpired lease (or is gone), and drop
-- the lease of a gone holder. Entries no longer kept just lose their running mark.
-- KEYS: 1 session:{id}  2 history:{id}  3 running:{id}  4 running
-- ARGV: 1 id  2 now  3 gone holder ('' for none)  4.. triples: seq, holder, the entry
--       marked interrupted ('' when it is no longer kept)
-- Returns how many kept entries were marked.
local s = redis.call('HMGET', KEYS[1], 'seq', 'lease_holder', 'lease_until')
if ARGV[3] ~= '' and s[2] == ARGV[3] then
  redis.call('HDEL', KEYS[1], 'lease_holder', 'lease_until')
  s[2] = false
end
local live = false
if s[2] and tonumber(s[3]) > tonumber(ARGV[2]) then
  live = s[2]
end
local total = tonumber(s[1] or '0')
local len = redis.call('LLEN', KEYS[2])
local marked = 0
for i = 4, #ARGV, 3 do
  local seq = ARGV[i]
  local holder = ARGV[i + 1]
  if redis.call('HGET', KEYS[3], seq) == holder and holder ~= live then
    redis.call('HDEL', KEYS[3], seq)
    local index = len - 1 - (total - tonumber(seq))
    if ARGV[i + 2] ~= '' and index >= 0 and index < len then
      redis.call('LSET', KEYS[2], index, ARGV[i + 2])
      marked = marked + 1
    end
  end
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
return marked
