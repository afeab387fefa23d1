-- An object with whatever of its descendants is cached. KEYS[1]: the study's base
-- key. ARGV[1]: the member. Returns nil, or {value, (member, value)...}.
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
