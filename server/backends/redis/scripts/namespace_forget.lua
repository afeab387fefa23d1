-- Forget dropped objects in the ledger. KEYS[1]: the namespace base. ARGV[1]: the
-- invalidation's number ('0': none), ARGV[2]: ms the lease hash lives after it,
-- then the addresses. When the namespace then holds nothing (no live object or
-- answer on its ledger), it goes as a whole drop would: its ledger and counters
-- are deleted and the invalidation recorded as a drop, so that every lease from
-- before it is refused, whatever study its store holds (nothing is left to tell
-- what else changed meanwhile). Returns 1 when the namespace is gone, else 0.
local ns = KEYS[1]
local freed = 0
for i = 3, #ARGV do
  local address = ARGV[i]
  local size = redis.call('HGET', ns .. 'b', address)
  if size then freed = freed + tonumber(size) end
  redis.call('HDEL', ns .. 'b', address)
  redis.call('ZREM', ns .. 'z' .. level_of(address), address)
end
if freed > 0 then bump(ns, 'bytes', -freed) end
local floor = '(' .. now_ms()
for _, zset in ipairs({'z1', 'z2', 'z3', 'qz'}) do
  if redis.call('ZCOUNT', ns .. zset, floor, '+inf') > 0 then return 0 end
end
for _, suffix in ipairs(LEDGER) do redis.call('DEL', ns .. suffix) end
if ARGV[1] ~= '0' then
  redis.call('HSET', ns .. 'lease', 'dropped', ARGV[1])
  extend(ns .. 'lease', tonumber(ARGV[2]))
end
return 1
