-- Forget dropped objects in the ledger. KEYS[1]: the namespace base. ARGV: addresses.
local ns = KEYS[1]
local freed = 0
for _, address in ipairs(ARGV) do
  local size = redis.call('HGET', ns .. 'b', address)
  if size then freed = freed + tonumber(size) end
  redis.call('HDEL', ns .. 'b', address)
  redis.call('ZREM', ns .. 'z' .. level_of(address), address)
end
if freed > 0 then bump(ns, 'bytes', -freed) end
return 1
