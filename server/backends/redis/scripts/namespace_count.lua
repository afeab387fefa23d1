-- Add the lookups and misses a server counted to the namespace's counters.
-- KEYS[1]: the namespace base. ARGV: lookups, misses, ms the counters live at
-- least: a namespace that holds nothing keeps them that long, then they go by
-- themselves (one that holds data keeps them as long as its ledger).
local counters = KEYS[1] .. 'n'
if ARGV[1] ~= '0' then redis.call('HINCRBY', counters, 'lookups', ARGV[1]) end
if ARGV[2] ~= '0' then redis.call('HINCRBY', counters, 'misses', ARGV[2]) end
extend(counters, tonumber(ARGV[3]))
return 1
