-- Finish a reset begun by begin_reset.lua, once the ledger is in the new round and has recorded
-- the orders moved aside: full stock again, no buyers, no idempotency keys, no outbox, and buys
-- are taken again. Repeating it changes nothing.
--
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset, attempts, stash hash, the sale's wake key,
-- the returned hash (an earlier round's ended holds: nothing of them can come back now), the holds
-- zset (an earlier round's holds are no longer this round's to wait for)
-- (its write is what tells buy processes that answered the sale from memory to forget it:
--  adapters/redis/fast_path.rs; the value does not matter, the key lives an hour)
-- ARGV[1] = round, ARGV[2..8] = the sale's definition as `sale_args` (adapters/redis/sales.rs)
--   writes it: stock, limit, opens_ms ('' = none), closes_ms ('' = none), attempts per minute
--   ('' = none), a checkout sale's hold in ms ('' = none), the storefront's info (JSON; '' = none)
-- Returns 1 when it started the round, 0 when the round had started already, -1 when a reset to
-- another round is under way (nothing changed).
local round = ARGV[1]
local resetting = redis.call('HGET', KEYS[1], 'resetting')
if resetting and resetting ~= round then
  return -1
end
if not resetting and redis.call('HGET', KEYS[1], 'round') == round then
  return 0
end
redis.call('DEL', unpack(KEYS))
redis.call('HSET', KEYS[1], 'stock', ARGV[2], 'remaining', ARGV[2], 'limit', ARGV[3], 'round', round)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'opens_ms', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'closes_ms', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'attempts', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'hold_ms', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'info', ARGV[8]) end
redis.call('SET', KEYS[8], round, 'EX', 3600)
return 1
