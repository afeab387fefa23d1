-- Take a request's flight (coalescing across servers). KEYS[1]: the namespace base.
-- ARGV: request key hex, holder id, ms the flight lasts. Returns 'answered' when
-- the request's answer is stored, else 'lead' when the flight was free (now the
-- holder's, for that long) or is the holder's already, else 'wait'. Counts nothing.
local ns = KEYS[1]
if redis.call('EXISTS', ns .. 'q:' .. ARGV[1]) == 1 then return 'answered' end
local flight = ns .. 'f:' .. ARGV[1]
local held = redis.call('GET', flight)
if not held then
  redis.call('SET', flight, ARGV[2], 'PX', ARGV[3])
  return 'lead'
end
if held == ARGV[2] then return 'lead' end
return 'wait'
