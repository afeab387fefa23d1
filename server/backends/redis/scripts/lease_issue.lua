-- Hand out a lease for a miss. KEYS[1]: the namespace's lease hash. ARGV[1]: ms
-- the hash lives after this (as long as a lease is honoured). Returns the lease:
-- the namespace's sequence, moved up to Redis's clock in microseconds, so that
-- leases and invalidations are ordered even across a restart that lost the hash.
-- A store under the lease is refused once an invalidation comes after it. A new
-- hash records since when it knows the namespace: older leases are refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'sequence') or '0')
local lease = math.max(last, now)
if last == 0 then redis.call('HSET', KEYS[1], 'since', string.format('%.0f', now)) end
redis.call('HSET', KEYS[1], 'sequence', string.format('%.0f', lease))
extend(KEYS[1], tonumber(ARGV[1]))  -- at least: a stale copy may have it live longer
return lease
