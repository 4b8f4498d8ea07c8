-- Give a finished sale's keys an expiry: no reservation can be added (sold out, or closed), none
-- is waiting in the outbox, and nothing can come back to it (a checkout sale's holds may end and
-- give units back until its last pay_by, holds_until, plus the grace ARGV[3]). Checked and
-- applied atomically, so a sale reloaded meanwhile (the reload makes its keys persistent) is
-- never expired; a unit given back later makes them persistent again (return_stock.lua).
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset, attempts, returned, stats.
-- ARGV: now_ms, ttl seconds, the grace after the last pay_by in ms.
-- Returns 1 when the expiry was set (or the sale is gone), 0 when the sale is not finished.
local sale = redis.call('HMGET', KEYS[1], 'remaining', 'closes_ms', 'resetting', 'holds_until')
if redis.call('ZCARD', KEYS[5]) > 0 or redis.call('HLEN', KEYS[4]) > 0 then
  return 0
end
if sale[3] then
  return 0 -- a reset is under way: its outbox is set aside, not empty
end
if sale[4] and tonumber(ARGV[1]) < tonumber(sale[4]) + tonumber(ARGV[3]) then
  return 0 -- a hold may still end and give its units back
end
if sale[1] then
  local sold_out = tonumber(sale[1]) <= 0
  local closed = sale[2] and tonumber(ARGV[1]) >= tonumber(sale[2])
  if not (sold_out or closed) then
    return 0
  end
end
for _, k in ipairs(KEYS) do
  if redis.call('TTL', k) == -1 then
    redis.call('EXPIRE', k, ARGV[2])
  end
end
return 1
