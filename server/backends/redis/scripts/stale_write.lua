-- Keep a stale copy (stale-if-error). KEYS[1]: the namespace base. ARGV: request
-- key hex, lease ('0': none), ms to keep, how long leases are honoured in
-- microseconds, the document (sealed by the server when it seals values).
-- Refused (0, nothing written) when the lease fails lease_check's rules or any
-- invalidation of the namespace ('touched') came after it. The copy is marked
-- with the lease (without one: now), and the lease hash lives at least as long as
-- the copy, so stale_read can tell whether an invalidation came since. Stored as
-- '<mark>|<ms kept>|<document>'. Returns 1.
local ns = KEYS[1]
local hash = ns .. 'lease'
local lease = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', hash, 'sequence') or '0')
local since = tonumber(redis.call('HGET', hash, 'since') or '0')
local dropped = tonumber(redis.call('HGET', hash, 'dropped') or '0')
local touched = tonumber(redis.call('HGET', hash, 'touched') or '0')
local mark = lease
if lease > 0 then
  if lease > last or lease < now - tonumber(ARGV[4]) or lease < since
      or dropped > lease or touched > lease then
    return 0
  end
else
  mark = math.max(now, last)
  if last == 0 then
    redis.call('HSET', hash, 'since', string.format('%.0f', mark))
  end
  redis.call('HSET', hash, 'sequence', string.format('%.0f', mark))
end
extend(hash, keep)
local value = string.format('%.0f', mark) .. '|' .. ARGV[3] .. '|' .. ARGV[5]
redis.call('SET', ns .. 's:' .. ARGV[1], value, 'PX', keep)
return 1
