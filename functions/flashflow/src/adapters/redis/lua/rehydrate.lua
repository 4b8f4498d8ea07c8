-- Rebuild (or load) a sale from what the ledger and the outbox say (see domain/rehydrate.rs).
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset, attempts (all with the sale's hash tag),
-- and (ARGV[1] = 'sale') the sale's wake key (its write is what tells buy processes that answered the sale from memory to forget it:
--  adapters/redis/fast_path.rs; the value does not matter, the key lives an hour)
--
-- ARGV[1] = 'entries': ARGV[2] = n; then n (buyer, count) pairs, each buyer's count raised to at
--   least that; then (field, value, authoritative '1'|'0') triples for the idempotency hash: an
--   authoritative (settled) value overwrites, another one only fills a gap. Returns 1.
-- ARGV[1] = 'sale': ARGV[2..9] = stock, remaining, limit, opens_ms ('' = none), closes_ms,
--   round, attempts per buyer per minute ('' = none), a checkout sale's hold in ms ('' = none);
--   ARGV[10] what the storefront shows (JSON: name, price, currency; '' = none). The definition is always refreshed and every key made persistent again (a finished
--   sale's keys may have been given an expiry). A sale Redis does not hold, or holds from an
--   earlier round, gets `remaining` as computed; a live one keeps the smaller of its own and the
--   computed one, so a rebuild never hands out stock twice. Returns 1 when loaded anew, else 0.
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

local have = redis.call('HMGET', KEYS[1], 'remaining', 'round')
local fresh = (not have[1]) or (have[2] or '1') ~= ARGV[7]
redis.call('HSET', KEYS[1], 'stock', ARGV[2], 'limit', ARGV[4], 'round', ARGV[7])
if ARGV[5] == '' then redis.call('HDEL', KEYS[1], 'opens_ms') else redis.call('HSET', KEYS[1], 'opens_ms', ARGV[5]) end
if ARGV[6] == '' then redis.call('HDEL', KEYS[1], 'closes_ms') else redis.call('HSET', KEYS[1], 'closes_ms', ARGV[6]) end
if (ARGV[8] or '') == '' then redis.call('HDEL', KEYS[1], 'attempts') else redis.call('HSET', KEYS[1], 'attempts', ARGV[8]) end
if (ARGV[9] or '') == '' then redis.call('HDEL', KEYS[1], 'hold_ms') else redis.call('HSET', KEYS[1], 'hold_ms', ARGV[9]) end
if (ARGV[10] or '') ~= '' then redis.call('HSET', KEYS[1], 'info', ARGV[10]) end
if fresh then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[3])
elseif tonumber(ARGV[3]) < tonumber(have[1]) then
  redis.call('HSET', KEYS[1], 'remaining', ARGV[3])
end
for i = 1, 6 do
  redis.call('PERSIST', KEYS[i])
end
redis.call('SET', KEYS[7], ARGV[7], 'EX', 3600)
if fresh then return 1 end
return 0
