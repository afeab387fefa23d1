-- A stale copy, if no invalidation of its namespace came after its mark (see
-- stale_write). KEYS[1]: the namespace base. ARGV[1]: request key hex. Returns
-- {document, PTTL, ms since it was kept (what it was kept for less its PTTL, so
-- that TTLs alone tell time)} or nil; a copy found dead (invalidated, or its lease hash lost,
-- so nothing tells) is deleted.
local ns = KEYS[1]
local key = ns .. 's:' .. ARGV[1]
local value = redis.call('GET', key)
if not value then return nil end
local bar = string.find(value, '|', 1, true)
local mark = tonumber(string.sub(value, 1, bar - 1))
local second = string.find(value, '|', bar + 1, true)
local keep = tonumber(string.sub(value, bar + 1, second - 1))
local hash = ns .. 'lease'
local since = redis.call('HGET', hash, 'since')
local touched = tonumber(redis.call('HGET', hash, 'touched') or '0')
local dropped = tonumber(redis.call('HGET', hash, 'dropped') or '0')
if not since or mark < tonumber(since) or touched > mark or dropped > mark then
  redis.call('DEL', key)
  return nil
end
local left = redis.call('PTTL', key)
return {string.sub(value, second + 1), left, math.max(0, keep - left)}
