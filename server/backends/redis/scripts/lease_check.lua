-- Whether a store under a lease may go ahead as far as the namespace can tell.
-- KEYS[1]: the namespace's lease hash. ARGV[1]: the lease, ARGV[2]: how long
-- leases are honoured, in microseconds. Returns 1, or 0 when the lease is from
-- the future (another Redis), older than that, older than the hash itself (the
-- hash expired, was evicted or lost in a restart after the lease: whatever it
-- recorded then is unknown), or the namespace was dropped after it. Each study's
-- own invalidations are checked by study_write.
local lease = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'sequence') or '0')
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
local dropped = tonumber(redis.call('HGET', KEYS[1], 'dropped') or '0')
if lease > last or lease < now - tonumber(ARGV[2]) or lease < since or dropped > lease then
  return 0
end
return 1
