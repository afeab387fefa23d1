-- A whole query answer in one call (single Redis only: the objects live in other
-- slots). KEYS[1]: the namespace base. ARGV: query hex, object key prefix. Returns
-- {entry, its PTTL, data or nil per line} on a hit, nil on a miss (the dead entry
-- dropped).
-- Writes nothing on a miss of an unknown query (lookups are counted by the server).
local ns = KEYS[1]
local entry_key = ns .. 'q:' .. ARGV[1]
local entry = redis.call('GET', entry_key)
if not entry then return nil end
local keys, tokens, addresses = {}, {}, {}
for i, line in ipairs(split(entry)) do
  local address, token = parse_line(line)
  local study, rest = string.match(address, '^([^:]*)(.*)$')
  keys[i] = ARGV[2] .. '{' .. study .. '}:o' .. rest
  tokens[i] = token
  addresses[i] = address
end
local data, complete, missing = check(keys, tokens, addresses)
if not complete then
  redis.call('DEL', entry_key)
  redis.call('ZREM', ns .. 'qz', ARGV[1])
  note_missing(ns, now_ms(), missing)
  return nil
end
local out = {entry, redis.call('PTTL', entry_key)}
for i = 1, #data do out[#out + 1] = data[i] end
return out
