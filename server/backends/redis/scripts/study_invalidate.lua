-- Drop an object and its descendants. KEYS[1]: the study's base key. ARGV[1]: the
-- member ('' for the study itself), ARGV[2]: the invalidation's number (from
-- lease_revoke; 0: none), ARGV[3]: ms to keep that number for stores to check
-- their lease against. An object that is not cached drops its whole study.
-- Returns {dropped count, members forgotten...}.
local base = KEYS[1]
local target = ARGV[1]
if ARGV[2] ~= '0' then redis.call('SET', base .. 'v', ARGV[2], 'PX', ARGV[3]) end
local tree = base .. 't'
local function collect()
  local found = {target}
  local prefix = target .. ':'
  for _, member in ipairs(redis.call('ZRANGE', tree, 0, -1)) do
    if target == '' or string.sub(member, 1, #prefix) == prefix then
      if member ~= target then found[#found + 1] = member end
    end
  end
  return found
end
local members = collect()
if target ~= '' and #members == 1 and redis.call('EXISTS', base .. 'o' .. target) == 0 then
  -- Not cached: the object is new in the archive, so the study's listings and every
  -- answer holding the study lack it. The whole study goes.
  target = ''
  members = collect()
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
