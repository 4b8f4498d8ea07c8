-- Start a sale's next round: full stock again, no buyers, no idempotency keys, no outbox.
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset.
-- ARGV: stock, limit, opens_ms ('' = none), closes_ms ('' = none), round
-- Returns the outbox's messages as they were: reserved orders the caller must still record.
local dropped = redis.call('HVALS', KEYS[4])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'remaining', ARGV[1], 'limit', ARGV[2], 'round', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'opens_ms', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'closes_ms', ARGV[4]) end
return dropped
