-- The sold-out fast path's snapshot of one sale (sold_out.rs), read atomically: whether every new
-- request would be refused as sold out or closed, and the idempotency fields the sale holds (a
-- request with one of them may name an order, so the script must answer it).
--
-- KEYS[1] sale hash, KEYS[2] idem hash
-- ARGV[1] the most idempotency fields to return
--
-- Returns {'BUYABLE'} (or a sale unknown, or being reset: nothing to remember), else
--   {'SOLD_OUT' | 'CLOSED', closes_ms or '', 'KEYS', field...} or {…, 'TOO_MANY_KEYS'}
local sale = redis.call('HMGET', KEYS[1], 'remaining', 'closes_ms', 'resetting')
if not sale[1] or sale[3] then
  return {'BUYABLE'}
end
-- Redis' clock, as reserve.lua judges the window.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local closes = tonumber(sale[2])
local state
if closes and now_ms >= closes then
  state = 'CLOSED'
elseif tonumber(sale[1]) <= 0 then
  state = 'SOLD_OUT'
else
  return {'BUYABLE'}
end
if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[1]) then
  return {state, sale[2] or '', 'TOO_MANY_KEYS'}
end
local out = {state, sale[2] or '', 'KEYS'}
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  out[#out + 1] = f
end
return out
