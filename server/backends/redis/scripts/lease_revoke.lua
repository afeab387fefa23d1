-- Number an invalidation. KEYS[1]: the namespace's lease hash. ARGV[1]: 'namespace'
-- when the whole namespace is dropped, else 'study'; ARGV[2]: ms the hash lives
-- after this (as long as a lease is honoured: any lease this could refuse is too
-- old by then anyway). Returns the invalidation's number, above every lease
-- handed out so far; the study's own record of it is written by study_invalidate
-- (in the study's slot), the namespace's here, and every invalidation's number as
-- 'touched' (what stale copies are checked against). The hash never loses TTL
-- here: a stale copy may have it live longer.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'sequence') or '0')
local number = math.max(last + 1, now)
local text = string.format('%.0f', number)
if last == 0 then redis.call('HSET', KEYS[1], 'since', text) end
redis.call('HSET', KEYS[1], 'sequence', text)
if ARGV[1] == 'namespace' then redis.call('HSET', KEYS[1], 'dropped', text) end
redis.call('HSET', KEYS[1], 'touched', text)
extend(KEYS[1], tonumber(ARGV[2]))
return number
