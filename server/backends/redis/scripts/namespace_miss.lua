-- Record what a miss found after the entry was read (Redis Cluster): drop the entry
-- if it is still the one read and note the missing objects. KEYS[1]: the namespace
-- base. ARGV: query hex ('' for none), entry read, addresses...
local ns = KEYS[1]
if ARGV[1] ~= '' then
  local entry_key = ns .. 'q:' .. ARGV[1]
  if redis.call('GET', entry_key) == ARGV[2] then
    redis.call('DEL', entry_key)
    redis.call('ZREM', ns .. 'qz', ARGV[1])
  end
end
local missing = {}
for i = 3, #ARGV do missing[#missing + 1] = ARGV[i] end
note_missing(ns, now_ms(), missing)
return 1
