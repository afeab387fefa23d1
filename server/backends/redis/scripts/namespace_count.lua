-- Add the lookups and misses a server counted to the namespace's counters, if the
-- namespace still holds something (a ledger): lookups of a namespace that holds
-- nothing leave nothing behind. KEYS[1]: the namespace base. ARGV: lookups, misses.
-- Returns 1 if counted, 0 if not.
local ns = KEYS[1]
local ttl = ledger_ttl(ns)
if ttl <= 0 then return 0 end
if ARGV[1] ~= '0' then redis.call('HINCRBY', ns .. 'n', 'lookups', ARGV[1]) end
if ARGV[2] ~= '0' then redis.call('HINCRBY', ns .. 'n', 'misses', ARGV[2]) end
if redis.call('PTTL', ns .. 'n') == -1 then redis.call('PEXPIRE', ns .. 'n', ttl) end
return 1
