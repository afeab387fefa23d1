-- Local functions shared by the scripts: scripts.py prepends this file to every one
-- of them (name a new function in .luacheckrc too).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(text)
  local out = {}
  for line in string.gmatch(text, '[^\n]+') do out[#out + 1] = line end
  return out
end

local function mget(keys)
  local out = {}
  for i = 1, #keys, 512 do
    local chunk = {}
    for j = i, math.min(i + 511, #keys) do chunk[#chunk + 1] = keys[j] end
    local values = redis.call('MGET', unpack(chunk))
    for j = 1, #chunk do out[#out + 1] = values[j] end
  end
  return out
end

-- The depth of an address ('s', 's:se', 's:se:i') or of a member ('', ':se', ':se:i').
local function level_of(address)
  local _, colons = string.gsub(address, ':', '')
  return colons + 1
end
local member_level = level_of

-- A stored object value: its token, '|', then its attributes.
local function unpack_value(value)
  local bar = string.find(value, '|', 1, true)
  return string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
end

-- Check the (key, token) items of an answer against values read; returns the data
-- (false for paths), whether every object is still the one recorded, and the
-- addresses whose keys are gone.
local function check(keys, tokens, addresses)
  local wanted = {}
  for i = 1, #keys do if tokens[i] ~= '' then wanted[#wanted + 1] = keys[i] end end
  local values = mget(wanted)
  local data, missing, complete, k = {}, {}, true, 0
  for i = 1, #keys do
    data[i] = false
    if tokens[i] ~= '' then
      k = k + 1
      local value = values[k]
      if value then
        local token, attributes = unpack_value(value)
        if token == tokens[i] then data[i] = attributes else complete = false end
      else
        complete = false
        missing[#missing + 1] = addresses[i]
      end
    end
  end
  return data, complete, missing
end

-- An answer's line: '<address or member>|<token>' ('' token: a path).
local function parse_line(line)
  local bar = string.find(line, '|', 1, true)
  return string.sub(line, 1, bar - 1), string.sub(line, bar + 1)
end

-- Make a key live at least ``ms`` more (a key without a TTL gets one, since every
-- key of the backend expires); returns its TTL in ms, 0 when it does not exist.
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left == -2 then return 0 end
  if left < ms then
    redis.call('PEXPIRE', key, ms)
    return ms
  end
  return left
end

-- The ledger's keys (after the namespace base), all carrying its longest TTL.
local LEDGER = {'n', 'b', 'z1', 'z2', 'z3', 'qz'}

-- The longest TTL among the namespace's ledger keys, in ms (0: none left).
local function ledger_ttl(ns)
  local longest = 0
  for _, suffix in ipairs(LEDGER) do
    longest = math.max(longest, redis.call('PTTL', ns .. suffix))
  end
  return longest
end

-- Add to a counter of the namespace. Counters live as long as the ledger: created
-- here (the ledger outlived them, as when Redis evicted them), they get its TTL.
local function bump(ns, field, by)
  redis.call('HINCRBY', ns .. 'n', field, by)
  if redis.call('PTTL', ns .. 'n') == -1 then
    redis.call('PEXPIRE', ns .. 'n', math.max(1, ledger_ttl(ns)))
  end
end

-- Drop the ledger entries of objects found missing; those that should still be
-- alive were evicted by Redis (maxmemory), the others expired.
local function note_missing(ns, now, addresses)
  local evicted = 0
  local freed = 0
  for _, address in ipairs(addresses) do
    local zset = ns .. 'z' .. level_of(address)
    local score = redis.call('ZSCORE', zset, address)
    if score then
      if tonumber(score) > now then evicted = evicted + 1 end
      local size = redis.call('HGET', ns .. 'b', address)
      if size then freed = freed + tonumber(size) end
      redis.call('ZREM', zset, address)
      redis.call('HDEL', ns .. 'b', address)
    end
  end
  if evicted > 0 then bump(ns, 'evictions', evicted) end
  if freed > 0 then bump(ns, 'bytes', -freed) end
end

-- Reap a bounded number of expired ledger entries, counting them as expirations.
local function prune(ns, now)
  local expired = 0
  local freed = 0
  for level = 1, 3 do
    local zset = ns .. 'z' .. level
    local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 256)
    for _, address in ipairs(gone) do
      local size = redis.call('HGET', ns .. 'b', address)
      if size then freed = freed + tonumber(size) end
      redis.call('HDEL', ns .. 'b', address)
      redis.call('ZREM', zset, address)
    end
    expired = expired + #gone
  end
  redis.call('ZREMRANGEBYSCORE', ns .. 'qz', '-inf', now)
  if expired > 0 then bump(ns, 'expirations', expired) end
  if freed > 0 then bump(ns, 'bytes', -freed) end
end
