-- A study from its shallowest good listing at least ARGV[1] deep, trimmed to that
-- level; every object of the listing must still be the one listed, and the objects
-- at that level must hold data. Dead listings met on the way are dropped.
-- KEYS[1]: the study's base key; KEYS[2] (single Redis only): the namespace base,
-- whose ledger forgets the objects found missing (on a cluster namespace_miss
-- does, in the namespace's slot). ARGV: level, the study's escaped uid.
-- Returns {depth, PTTL of the listing, (member, data or nil)...} or {0, missing
-- addresses...}.
-- Lookups are counted by the server, not here: a hit writes nothing.
local base, ns = KEYS[1], KEYS[2]
local level = tonumber(ARGV[1])
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
      local out = {depth, redis.call('PTTL', base .. 'l' .. depth)}
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
if ns and #all_missing > 0 then note_missing(ns, now_ms(), all_missing) end
local out = {0}
for _, address in ipairs(all_missing) do out[#out + 1] = address end
return out
