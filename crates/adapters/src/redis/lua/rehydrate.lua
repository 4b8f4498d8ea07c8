-- Rebuild (or load) a sale from what the ledger and the outbox say (see domain/rehydrate.rs).
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset, attempts (all with the sale's hash tag),
-- and (ARGV[1] = 'sale') the sale's wake key (its write is what tells buy processes that answered the sale from memory to forget it:
--  adapters/redis/fast_path.rs; the value does not matter, the key lives an hour)
--
-- ARGV[1] = 'entries': ARGV[2] = n; then n (buyer, count) pairs, each buyer's count raised to at
--   least that; then (field, value, authoritative '1'|'0') triples for the idempotency hash: an
--   authoritative (settled) value overwrites, another one only fills a gap. Returns 1.
-- ARGV[1] = 'holds' (KEYS: holds zset, returned hash): then (order id, pay_by ms) pairs, a
--   checkout sale's holds that may still give a unit back, each added to the holds zset unless
--   its unit came back already (a return between the ledger's read and this one). Returns 1.
-- ARGV[1] = 'sale': ARGV[2] = remaining, ARGV[3] = round, ARGV[4..10] = the sale's definition as
--   `sale_args` (adapters/redis/sales.rs) writes it: stock, limit, opens_ms ('' = none),
--   closes_ms ('' = none), attempts per buyer per minute ('' = none), a checkout sale's hold in
--   ms ('' = none), what the storefront shows (JSON: name, price, currency; '' = none);
--   ARGV[11] = the last pay_by of the holds restored ('' = none; holds_until never goes back);
--   ARGV[12] = remaining for a sale loaded anew, ARGV[13..] = the round's ended holds (KEYS[8]
--   the returned hash, KEYS[9] the holds zset). The
--   definition is always refreshed and every key made persistent again (a finished sale's keys
--   may have been given an expiry). A sale Redis does not hold, or holds from an
--   earlier round, gets ARGV[12]: every ended hold's unit counts as back, and each is recorded
--   as returned, so a late or repeated return of it (its carrier's first try reached the Redis
--   that was lost) gives nothing twice. A live one keeps the smaller of its own and ARGV[2] (an
--   ended hold out until its return reaches Redis), so a rebuild never hands out stock twice.
--   The sale also records which promotion of this node it was rebuilt after (INFO's
--   master_replid2; 40 zeros on a node never promoted): reserve.lua pauses a sale rebuilt before
--   the latest one (REDIS_PAUSE_ON_FAILOVER). Returns 1 when loaded anew, else 0.
if ARGV[1] == 'entries' then
  local n = tonumber(ARGV[2])
  local i = 3
  for _ = 1, n do
    local have = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
    if tonumber(ARGV[i + 1]) > have then
      redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    end
    i = i + 2
  end
  while i + 2 <= #ARGV do
    if ARGV[i + 2] == '1' then
      redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    else
      redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1])
    end
    i = i + 3
  end
  return 1
end

if ARGV[1] == 'holds' then
  for i = 2, #ARGV - 1, 2 do
    if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    end
  end
  return 1
end

local have = redis.call('HMGET', KEYS[1], 'remaining', 'round', 'holds_until')
local remaining, round = ARGV[2], ARGV[3]
local fresh = (not have[1]) or (have[2] or '1') ~= round
local function set_or_clear(field, value)
  if value == '' then redis.call('HDEL', KEYS[1], field) else redis.call('HSET', KEYS[1], field, value) end
end
redis.call('HSET', KEYS[1], 'stock', ARGV[4], 'limit', ARGV[5], 'round', round)
set_or_clear('opens_ms', ARGV[6])
set_or_clear('closes_ms', ARGV[7])
set_or_clear('attempts', ARGV[8])
set_or_clear('hold_ms', ARGV[9])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'info', ARGV[10]) end
if ARGV[11] ~= '' and tonumber(ARGV[11]) > tonumber(have[3] or '0') then
  redis.call('HSET', KEYS[1], 'holds_until', ARGV[11])
end
if fresh then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[12])
  for i = 13, #ARGV do
    redis.call('HSET', KEYS[8], ARGV[i], round)
    redis.call('ZREM', KEYS[9], ARGV[i])
  end
elseif tonumber(remaining) < tonumber(have[1]) then
  redis.call('HSET', KEYS[1], 'remaining', remaining)
end
for i = 1, 6 do
  redis.call('PERSIST', KEYS[i])
end
redis.call('SET', KEYS[7], round, 'EX', 3600)
local promoted_from = string.match(redis.call('INFO', 'replication'), 'master_replid2:(%w+)')
redis.call('HSET', KEYS[1], 'promoted_from', promoted_from or '')
if fresh then return 1 end
return 0
