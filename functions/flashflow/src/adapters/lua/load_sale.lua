-- Load a sale's definition into Redis.
-- KEYS[1] sale hash. ARGV: stock, available, limit, opens_ms ('' = none), closes_ms ('' = none)
-- The definition (stock, limit, window) is always refreshed; the remaining count is only set when the
-- sale is not loaded yet, so re-loading a live sale never hands out stock twice. `available` is what
-- Postgres says may still be sold (stock minus confirmed), which keeps a reload after Redis lost its
-- data from overselling.
-- Returns 1 when the sale was newly loaded, 0 when it was already there.
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'limit', ARGV[3])
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'opens_ms') else redis.call('HSET', KEYS[1], 'opens_ms', ARGV[4]) end
if ARGV[5] == '' then redis.call('HDEL', KEYS[1], 'closes_ms') else redis.call('HSET', KEYS[1], 'closes_ms', ARGV[5]) end
if fresh then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[2])
  return 1
end
return 0
