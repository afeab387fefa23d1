-- Record written objects (and a query entry) in the namespace's ledger, and make
-- every ledger key live as long as the longest-lived of them (the ledger goes when
-- the namespace's data has gone). KEYS[1]: the namespace base. ARGV: ttl_ms, query
-- hex ('' for none), entry ttl_ms, entry, then (address, size) pairs. Returns
-- when the ledger expires (Redis ms; 0: the namespace holds nothing).
local ns = KEYS[1]
local ttl = tonumber(ARGV[1])
local now = now_ms()
prune(ns, now)
local delta = 0
for i = 5, #ARGV, 2 do
  local address = ARGV[i]
  local size = tonumber(ARGV[i + 1])
  local old = redis.call('HGET', ns .. 'b', address)
  delta = delta + size - (old and tonumber(old) or 0)
  redis.call('HSET', ns .. 'b', address, size)
  redis.call('ZADD', ns .. 'z' .. level_of(address), now + ttl, address)
end
if delta ~= 0 then redis.call('HINCRBY', ns .. 'n', 'bytes', delta) end
if ARGV[2] ~= '' then
  local entry_ttl = tonumber(ARGV[3])
  redis.call('SET', ns .. 'q:' .. ARGV[2], ARGV[4], 'PX', entry_ttl)
  redis.call('ZADD', ns .. 'qz', now + entry_ttl, ARGV[2])
end
local longest = 0
for _, suffix in ipairs(LEDGER) do longest = math.max(longest, extend(ns .. suffix, ttl)) end
if longest == 0 then return 0 end
return now + longest
