-- Give a finished sale's keys an expiry: no reservation can be added (sold out, or closed) and
-- none is waiting in the outbox. Checked and applied atomically, so a sale reloaded meanwhile
-- (the reload makes its keys persistent) is never expired.
-- KEYS: sale hash, buyers, idem, outbox hash, outbox zset, attempts. ARGV: now_ms, ttl seconds.
-- Returns 1 when the expiry was set (or the sale is gone), 0 when the sale is not finished.
local sale = redis.call('HMGET', KEYS[1], 'remaining', 'closes_ms', 'resetting')
if redis.call('ZCARD', KEYS[5]) > 0 or redis.call('HLEN', KEYS[4]) > 0 then
  return 0
end
if sale[3] then
  return 0 -- a reset is under way: its outbox is set aside, not empty
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
