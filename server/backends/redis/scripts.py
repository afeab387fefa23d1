"""The Lua scripts of the Redis backend: each runs atomically inside one Redis.

A script touches only keys that share the hash tag of its ``KEYS[1]`` (a study's
or a namespace's), so it runs unchanged on a Redis Cluster; the one exception,
``QUERY_READ``, reads a whole answer in one call and is used only on a single
Redis. Time is Redis's own (``TIME``), so every server sharing the Redis agrees.

Key layout (schema 1; ``<ns>`` and UIDs escaped, see ``redis.py``)::

    dc:1:<ns>:{<study>}:o[:<series>[:<instance>]]  '<token>|<attributes>' (PX ttl)
    dc:1:<ns>:{<study>}:t                          zset: the study's objects, by expiry
    dc:1:<ns>:{<study>}:g                          serial for new tokens
    dc:1:<ns>:{<study>}:l<depth>                   a complete listing to depth (PX ttl)
    dc:1:{<ns>}:q:<hex of the query key>           a query answer: its addresses (PX ttl)
    dc:1:{<ns>}:n                                  hash: lookups, misses, bytes, ...
    dc:1:{<ns>}:z<level> / :b / :qz                the stats ledger (zsets by expiry, sizes)

Answers and listings hold one line per object, ``<address>|<token>`` (an empty
token for a level that was only a path); addresses are
``<study>[:<series>[:<instance>]]``, members (inside a study)
``[:<series>[:<instance>]]``. Every sorted set is scored by absolute expiry in
Redis milliseconds (the tests' time machine relies on it).
"""

from __future__ import annotations

# Shared Lua functions, prepended to the scripts that need them.
_COMMON = r"""
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
  if evicted > 0 then redis.call('HINCRBY', ns .. 'n', 'evictions', evicted) end
  if freed > 0 then redis.call('HINCRBY', ns .. 'n', 'bytes', -freed) end
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
  if expired > 0 then redis.call('HINCRBY', ns .. 'n', 'expirations', expired) end
  if freed > 0 then redis.call('HINCRBY', ns .. 'n', 'bytes', -freed) end
end
"""

# Write a study's objects, and optionally its listing. KEYS[1]: the study's base key.
# ARGV: ttl_ms, listing depth (0: none), then (member, kind, value) per object in
# pre-order, kind 'o' for an object, 'p' for a path (not written). An object
# keeps its token while its key lives, and gets a new one when it is created, so
# answers that saw the old object stay dead. A node that appears (an object or a
# path that was not there) drops the study's listings that deep or deeper: they
# no longer list every child. Returns {member, token, ...} of the objects written.
STUDY_WRITE = r"""
local base = KEYS[1]
local ttl = tonumber(ARGV[1])
local depth = tonumber(ARGV[2])
local now = now_ms()
local tree = base .. 't'
redis.call('ZREMRANGEBYSCORE', tree, '-inf', now)
local live = nil
local function present(member)
  if redis.call('EXISTS', base .. 'o' .. member) == 1 then return true end
  if not live then
    live = {}
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', tree, '(' .. now, '+inf')) do
      local cut = string.find(m, ':', 2, true)
      while cut do
        live[string.sub(m, 1, cut - 1)] = true
        cut = string.find(m, ':', cut + 1, true)
      end
      live[''] = true
    end
  end
  return live[member] == true
end
local function drop_listings(from)
  for d = from, 3 do redis.call('DEL', base .. 'l' .. d) end
end
local out = {}
local lines = {}
for i = 3, #ARGV, 3 do
  local member, kind = ARGV[i], ARGV[i + 1]
  local level = member_level(member)
  local token = ''
  if kind == 'o' then
    local key = base .. 'o' .. member
    local old = redis.call('GETRANGE', key, 0, 63)
    local bar = string.find(old, '|', 1, true)
    if bar then
      token = string.sub(old, 1, bar - 1)
    else
      -- Redis's clock and a per-study serial: unique even if the serial restarts.
      token = string.format('%x.%x', now, redis.call('INCR', base .. 'g'))
      drop_listings(level)
    end
    redis.call('SET', key, token .. '|' .. ARGV[i + 2], 'PX', ttl)
    redis.call('ZADD', tree, now + ttl, member)
    out[#out + 1] = member
    out[#out + 1] = token
  elseif not present(member) then
    drop_listings(level)
  end
  if level <= depth then lines[#lines + 1] = member .. '|' .. token end
end
if depth > 0 then
  local function shape(listing, upto)
    local members = {}
    for _, line in ipairs(split(listing)) do
      local member = string.sub(line, 1, string.find(line, '|', 1, true) - 1)
      if member_level(member) <= upto then members[#members + 1] = member end
    end
    table.sort(members)
    return table.concat(members, '\n')
  end
  local listing = table.concat(lines, '\n')
  for d = 1, 3 do
    if d ~= depth then
      local other = redis.call('GET', base .. 'l' .. d)
      if other then
        local upto = math.min(d, depth)
        if shape(other, upto) ~= shape(listing, upto) then redis.call('DEL', base .. 'l' .. d) end
      end
    end
  end
  redis.call('SET', base .. 'l' .. depth, listing, 'PX', ttl)
end
local last = redis.call('ZRANGE', tree, -1, -1, 'WITHSCORES')
if last[2] then
  local keep = math.max(1, tonumber(last[2]) - now)
  redis.call('PEXPIRE', tree, keep)
  redis.call('PEXPIRE', base .. 'g', keep)
end
return out
"""

# A study from its shallowest good listing at least ARGV[1] deep, trimmed to that
# level; every object of the listing must still be the one listed, and the objects
# at that level must hold data. Dead listings met on the way are dropped.
# KEYS[1]: the study's base key; KEYS[2], KEYS[3] (single Redis only): the
# namespace base and the set of namespaces, for the counters.
# ARGV: level, the study's escaped uid, the namespace.
# Returns {depth, (member, data or nil)...} or {0, missing addresses...}.
STUDY_READ = r"""
local base, ns = KEYS[1], KEYS[2]
local level = tonumber(ARGV[1])
if ns then
  redis.call('HINCRBY', ns .. 'n', 'lookups', 1)
  redis.call('SADD', KEYS[3], ARGV[3])
end
local all_missing = {}
for depth = level, 3 do
  local listing = redis.call('GET', base .. 'l' .. depth)
  if listing then
    local members, keys, tokens, addresses = {}, {}, {}, {}
    for _, line in ipairs(split(listing)) do
      local member, token = parse_line(line)
      members[#members + 1] = member
      keys[#keys + 1] = base .. 'o' .. member
      tokens[#tokens + 1] = token
      addresses[#addresses + 1] = ARGV[2] .. member
    end
    local data, complete, missing = check(keys, tokens, addresses)
    -- The objects at the requested level must hold data, even where the listing
    -- recorded only a path (see answer.py: no partial answers at shallower levels).
    local leaves = complete
    for i = 1, #members do
      if leaves and data[i] == false and member_level(members[i]) == level then
        local value = redis.call('GET', keys[i])
        if value then
          local _, attributes = unpack_value(value)
          data[i] = attributes
        else
          leaves = false
        end
      end
    end
    if leaves then
      local out = {depth}
      for i = 1, #members do
        if member_level(members[i]) <= level then
          out[#out + 1] = members[i]
          out[#out + 1] = data[i]
        end
      end
      return out
    end
    if not complete or depth == level then
      for _, address in ipairs(missing) do all_missing[#all_missing + 1] = address end
      redis.call('DEL', base .. 'l' .. depth)
    end
  end
end
if ns then
  redis.call('HINCRBY', ns .. 'n', 'misses', 1)
  note_missing(ns, now_ms(), all_missing)
end
local out = {0}
for _, address in ipairs(all_missing) do out[#out + 1] = address end
return out
"""

# A whole query answer in one call (single Redis only: the objects live in other
# slots). KEYS: the namespace base, the set of namespaces. ARGV: query hex, object
# key prefix, the namespace. Returns {entry, data or nil per line} on a hit, nil
# on a miss (the dead entry dropped).
QUERY_READ = r"""
local ns = KEYS[1]
local entry_key = ns .. 'q:' .. ARGV[1]
redis.call('HINCRBY', ns .. 'n', 'lookups', 1)
redis.call('SADD', KEYS[2], ARGV[3])
local entry = redis.call('GET', entry_key)
if not entry then
  redis.call('HINCRBY', ns .. 'n', 'misses', 1)
  return nil
end
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
  redis.call('HINCRBY', ns .. 'n', 'misses', 1)
  note_missing(ns, now_ms(), missing)
  return nil
end
local out = {entry}
for i = 1, #data do out[#out + 1] = data[i] end
return out
"""

# A query's entry alone (Redis Cluster: the objects are read per slot after).
# KEYS[1]: the namespace base. ARGV[1]: query hex. Counts the lookup.
QUERY_ENTRY = r"""
local ns = KEYS[1]
redis.call('HINCRBY', ns .. 'n', 'lookups', 1)
local entry = redis.call('GET', ns .. 'q:' .. ARGV[1])
if not entry then redis.call('HINCRBY', ns .. 'n', 'misses', 1) end
return entry
"""

# Record a miss found after the entry was read (Redis Cluster): drop the entry if it
# is still the one read, count the miss and note the missing objects.
# KEYS[1]: the namespace base. ARGV: query hex ('' for none), entry read, addresses...
NAMESPACE_MISS = r"""
local ns = KEYS[1]
if ARGV[1] ~= '' then
  local entry_key = ns .. 'q:' .. ARGV[1]
  if redis.call('GET', entry_key) == ARGV[2] then
    redis.call('DEL', entry_key)
    redis.call('ZREM', ns .. 'qz', ARGV[1])
  end
end
redis.call('HINCRBY', ns .. 'n', 'misses', 1)
local missing = {}
for i = 3, #ARGV do missing[#missing + 1] = ARGV[i] end
note_missing(ns, now_ms(), missing)
return 1
"""

# Record written objects (and a query entry) in the namespace's ledger.
# KEYS[1]: the namespace base. ARGV: ttl_ms, query hex ('' for none), entry ttl_ms,
# entry, then (address, size) pairs.
NAMESPACE_WRITE = r"""
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
return 1
"""

# Forget dropped objects in the ledger. KEYS[1]: the namespace base. ARGV: addresses.
NAMESPACE_FORGET = r"""
local ns = KEYS[1]
local freed = 0
for _, address in ipairs(ARGV) do
  local size = redis.call('HGET', ns .. 'b', address)
  if size then freed = freed + tonumber(size) end
  redis.call('HDEL', ns .. 'b', address)
  redis.call('ZREM', ns .. 'z' .. level_of(address), address)
end
if freed > 0 then redis.call('HINCRBY', ns .. 'n', 'bytes', -freed) end
return 1
"""

# The namespace's counters. KEYS[1]: the namespace base.
# Returns {studies, series, instances, queries, counter hash as a flat list}.
NAMESPACE_STATS = r"""
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
"""

# Drop an object and its descendants. KEYS[1]: the study's base key. ARGV[1]: the
# member ('' for the study itself). Returns {dropped count, members forgotten...}.
STUDY_INVALIDATE = r"""
local base = KEYS[1]
local target = ARGV[1]
local tree = base .. 't'
local members = {target}
local prefix = target .. ':'
for _, member in ipairs(redis.call('ZRANGE', tree, 0, -1)) do
  if target == '' or string.sub(member, 1, #prefix) == prefix then
    if member ~= target then members[#members + 1] = member end
  end
end
local dropped = 0
for _, member in ipairs(members) do
  dropped = dropped + redis.call('DEL', base .. 'o' .. member)
  redis.call('ZREM', tree, member)
end
for d = member_level(target), 3 do redis.call('DEL', base .. 'l' .. d) end
if target == '' then redis.call('DEL', tree) end
local out = {dropped}
for _, member in ipairs(members) do out[#out + 1] = member end
return out
"""

# An object with whatever of its descendants is cached. KEYS[1]: the study's base
# key. ARGV[1]: the member. Returns nil, or {value, (member, value)...}.
OBJECT_READ = r"""
local base = KEYS[1]
local target = ARGV[1]
local value = redis.call('GET', base .. 'o' .. target)
if not value then return nil end
local prefix = target .. ':'
local members = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', base .. 't', '(' .. now_ms(), '+inf')) do
  if string.sub(member, 1, #prefix) == prefix or (target == '' and member ~= '') then
    members[#members + 1] = member
  end
end
local keys = {}
for i, member in ipairs(members) do keys[i] = base .. 'o' .. member end
local values = mget(keys)
local out = {value}
for i = 1, #members do
  if values[i] then
    out[#out + 1] = members[i]
    out[#out + 1] = values[i]
  end
end
return out
"""

SCRIPTS: dict[str, str] = {
    name: _COMMON + body
    for name, body in {
        "study_write": STUDY_WRITE,
        "study_read": STUDY_READ,
        "query_read": QUERY_READ,
        "query_entry": QUERY_ENTRY,
        "namespace_miss": NAMESPACE_MISS,
        "namespace_write": NAMESPACE_WRITE,
        "namespace_forget": NAMESPACE_FORGET,
        "namespace_stats": NAMESPACE_STATS,
        "study_invalidate": STUDY_INVALIDATE,
        "object_read": OBJECT_READ,
    }.items()
}
