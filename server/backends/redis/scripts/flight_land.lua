-- Give a request's flight back. KEYS[1]: the namespace base. ARGV: request key hex,
-- holder id. Deletes the flight only while it is the holder's (it may have run out
-- and been taken by another). Returns 1 when it was deleted.
local flight = KEYS[1] .. 'f:' .. ARGV[1]
if redis.call('GET', flight) == ARGV[2] then
  redis.call('DEL', flight)
  return 1
end
return 0
