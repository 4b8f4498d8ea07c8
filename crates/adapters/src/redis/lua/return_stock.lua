-- A hold's end carried to Redis, once per order. An ended hold (checkout: expiry, cancel) gives
-- its units back; a paid one gives nothing back but is no longer open (queue_step.lua says a sale
-- is sold out only when no hold is open). Re-sent (a retry after a timeout, the expiry job
-- finishing a follow-up) it changes nothing more.
--
-- KEYS[1] sale hash, KEYS[2] buyers hash, KEYS[3] returned hash (order id -> round), KEYS[4] the
-- sale's wake key (its write is what tells buy processes that answered the sale from memory to
-- forget it: adapters/redis/fast_path.rs; the value does not matter, the key lives an hour),
-- KEYS[5] holds zset (order id -> pay_by), KEYS[6..] the sale's other keys (made persistent
-- again: a sale with a unit back is live, whatever a retirement said; the caller registers it
-- again)
-- ARGV: order id, buyer, quantity, the order's round, 'return' (an ended hold) or 'kept' (paid)
--
-- Returns RETURNED | KEPT | ALREADY (returned before) | OTHER_ROUND (a reset rebuilt the sale
-- from the ledger: nothing to give back) | NO_SALE (Redis does not hold the sale: try again once
-- it is loaded; a load from the ledger counts the units as still out until then).
if redis.call('HEXISTS', KEYS[1], 'remaining') == 0 then
  return 'NO_SALE'
end
if (redis.call('HGET', KEYS[1], 'round') or '1') ~= ARGV[4] then
  return 'OTHER_ROUND'
end
redis.call('ZREM', KEYS[5], ARGV[1])
if ARGV[5] == 'kept' then
  return 'KEPT'
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[4]) == 0 then
  return 'ALREADY'
end
local qty = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], 'remaining', qty)
-- The buyer's allowance comes back too: that buyer may buy again.
if redis.call('HINCRBY', KEYS[2], ARGV[2], -qty) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[4], ARGV[1], 'EX', 3600)
for i = 1, #KEYS do
  if i ~= 4 then redis.call('PERSIST', KEYS[i]) end
end
return 'RETURNED'
