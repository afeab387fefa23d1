-- A query's entry alone (Redis Cluster: the objects are read per slot after).
-- KEYS[1]: the namespace base. ARGV[1]: query hex. Counts the lookup.
local ns = KEYS[1]
redis.call('HINCRBY', ns .. 'n', 'lookups', 1)
local entry = redis.call('GET', ns .. 'q:' .. ARGV[1])
if not entry then redis.call('HINCRBY', ns .. 'n', 'misses', 1) end
return entry
