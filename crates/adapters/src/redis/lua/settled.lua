-- Settle's bookkeeping for one sale: the settled orders leave the outbox, and each settled
-- idempotency key records the order's state, so a replay of the request answers it.
-- KEYS: sale hash, idem, outbox hash, outbox zset.
-- ARGV[1] = n; ARGV[2 .. n+1] order ids; then (field, value, round) triples for the idempotency
-- hash. A key is written only when Redis holds the sale in that round: not for a sale it no
-- longer holds (nothing would expire the key), nor for an order of a round before a reset.
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
local round = redis.call('HGET', KEYS[1], 'round')
if round then
  for i = n + 2, #ARGV - 2, 3 do
    if ARGV[i + 2] == round then
      redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    end
  end
end
return n
