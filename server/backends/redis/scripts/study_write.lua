-- Write a study's objects, and optionally its listing. KEYS[1]: the study's base key.
-- ARGV: ttl_ms, listing depth (0: none), lease (0: none), then (member, kind,
-- value) per object in
-- pre-order, kind 'o' for an object, 'p' for a path (not written). An object
-- keeps its token while its key lives and its attributes stay the same, and gets
-- a new one when it is created or its attributes change, so answers that saw the
-- old object stay dead. A node that appears (an object or a
-- path that was not there) drops the study's listings that deep or deeper: they
-- no longer list every child. Returns {member, token, ...} of the objects written,
-- or nil, writing nothing, when the study was invalidated after the lease.
local base = KEYS[1]
local ttl = tonumber(ARGV[1])
local depth = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local invalidated = redis.call('GET', base .. 'v')
if lease > 0 and invalidated and tonumber(invalidated) > lease then return false end
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
for i = 4, #ARGV, 3 do
  local member, kind = ARGV[i], ARGV[i + 1]
  local level = member_level(member)
  local token = ''
  if kind == 'o' then
    local key = base .. 'o' .. member
    local old = redis.call('GET', key)
    local bar = old and string.find(old, '|', 1, true)
    if bar and string.sub(old, bar + 1) == ARGV[i + 2] then
      token = string.sub(old, 1, bar - 1)  -- the same attributes: answers that saw them hold
    else
      -- New, or other attributes: a new token, so every answer that saw the old
      -- attributes is dead. Redis's clock and a per-study serial: unique even if
      -- the serial restarts.
      token = string.format('%x.%x', now, redis.call('INCR', base .. 'g'))
      if not bar and not present(member) then drop_listings(level) end
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
