-- The namespace's counters. KEYS[1]: the namespace base.
-- Returns {studies, series, instances, queries, counter hash as a flat list}.
local ns = KEYS[1]
local now = now_ms()
prune(ns, now)
local floor = '(' .. now
return {
  redis.call('ZCOUNT', ns .. 'z1', floor, '+inf'),
  redis.call('ZCOUNT', ns .. 'z2', floor, '+inf'),
  redis.call('ZCOUNT', ns .. 'z3', floor, '+inf'),
  redis.call('ZCOUNT', ns .. 'qz', floor, '+inf'),
  redis.call('HGETALL', ns .. 'n'),
}
