-- The namespaces that may hold data. KEYS[1]: the registry, a sorted set of
-- namespaces scored by when the last of their data expires (Redis ms). Those past
-- it are dropped first. Returns the names.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
