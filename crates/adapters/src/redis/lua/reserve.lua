-- Reserve stock for one buy, atomically. Every key carries the sale's hash tag, so this runs on
-- Redis Cluster too.
--
-- KEYS[1] sale hash   {remaining, limit, opens_ms, closes_ms, stock, round, resetting, attempts,
--                      hold_ms and holds_until (a checkout sale: its hold, and the last pay_by
--                      given, which retire.lua waits for)}
-- KEYS[2] buyers hash  buyer -> quantity reserved so far
-- KEYS[3] idem hash    buyer .. "\n" .. idempotency key -> order id .. " " .. quantity, then
--                      " " .. STATE once settle recorded it (domain/rehydrate.rs writes the same)
-- KEYS[4] outbox hash  order id -> order message (JSON), removed once settled
-- KEYS[5] outbox zset  order id -> reserved-at ms (pushed far out once buy's send succeeded), lets
--                      the sweeper find the entries whose message may be lost cheaply
-- KEYS[6] attempts     buyer -> minute .. ':' .. attempts in that minute (sales that limit them)
-- KEYS[7] order key    set once this order reserved (to its pay_by, '' for none), kept ARGV[7] ms:
--                      running the script again for the same order id (fred re-sends after a
--                      reconnect, buy asks again after a timeout) answers the first run's RESERVED
--                      with the message still in the outbox, or DUPLICATE once it left it (settled,
--                      or moved aside by a reset: nothing to send again), and changes nothing. Not
--                      the message itself: a second copy of every order was a third of the AOF's
--                      bytes per order (docs/performance.md)
-- KEYS[8] the waiting room's batches' uses (batch id -> count): a sale whose hash has `wr` (the
--                      queue's epoch) takes only buys with an admission of that queue, valid now
-- KEYS[9] the waiting room's spent admissions (join index -> the order that spent it): an
--                      admission is spent by its first reservation; giving the unit back does not
--                      re-arm it
-- KEYS[10] the waiting room's count of admissions used (queue_step.lua reads it)
-- KEYS[11] holds zset  a checkout sale's open holds: order id -> pay_by ms (return_stock.lua takes
--                      an ended or paid one out; queue_step.lua says sold out only when none is open)
-- ARGV: order_id, sale_id, buyer, quantity, idempotency key ('' when none), message version,
--       how long the order key is kept (ms), buy's signature of the order (written into the
--       message: the sweeper forwards it as is, settle checks it), the admission buy checked
--       ("join-index batch expires_ms epoch"; '' = none), '1' to pause after a failover
--       (REDIS_PAUSE_ON_FAILOVER; '' = do not look)
-- (the order message's fields and version are defined by `OrderMessage` in domain/message.rs)
--
-- Returns {status, detail} (RESERVED: {status, detail, pay_by_ms or ''}):
--   RESERVED order-json | DUPLICATE order-id[ STATE] | KEY_REUSED order-id | NO_SALE
--   | RESETTING round | FAILED_OVER replid | NOT_ADMITTED | ADMISSION_USED order-id | TOO_MANY seconds-to-the-next-minute
--   | NOT_OPEN opens_ms
--   | CLOSED closes_ms
--   LIMIT remaining-allowance | SOLD_OUT | INSUFFICIENT remaining

-- The same order again: the first run's answer, whatever happened since (sold out, a settled
-- key). Only a run that reserved changed anything, so only that one is remembered.
local first = redis.call('GET', KEYS[7])
if first then
  local message = redis.call('HGET', KEYS[4], ARGV[1])
  if message then
    return {'RESERVED', message, first}
  end
  return {'DUPLICATE', ARGV[1]}
end

local sale = redis.call('HMGET', KEYS[1], 'remaining', 'limit', 'opens_ms', 'closes_ms', 'round',
  'resetting', 'attempts', 'hold_ms', 'wr', 'promoted_from')
if not sale[1] then
  return {'NO_SALE', ''}
end
-- A reset is under way (begin_reset.lua): nothing is taken until it finishes.
if sale[6] then
  return {'RESETTING', sale[6]}
end

-- A retried request must get its original answer even after the sale sold out or closed.
local idem_field = false
if ARGV[5] ~= '' then
  idem_field = ARGV[3] .. '\n' .. ARGV[5]
  local existing = redis.call('HGET', KEYS[3], idem_field)
  if existing then
    -- The same key with another request (another quantity) is the client's mistake, not a retry.
    local id, qty, state = string.match(existing, '^(%S+) (%d+) ?(%u*)$')
    if not id then
      return {'DUPLICATE', existing}
    end
    if qty ~= ARGV[4] then
      return {'KEY_REUSED', id}
    end
    if state ~= '' then
      return {'DUPLICATE', id .. ' ' .. state}
    end
    return {'DUPLICATE', id}
  end
end

-- A replica promoted since the sale's counts were last rebuilt (rehydrate.lua records which
-- promotion it rebuilt them after): replication is asynchronous, so the promoted node may lack the
-- last writes the old primary answered for, and its counts may promise units Postgres already
-- gave. Nothing is taken until the operator's rehydrate rebuilt them from the ledger. A node
-- that was never a replica says 40 zeros.
if ARGV[10] == '1' then
  local promoted_from = string.match(redis.call('INFO', 'replication'), 'master_replid2:(%w+)')
  if promoted_from and promoted_from ~= string.rep('0', 40)
      and promoted_from ~= (sale[10] or '') then
    return {'FAILED_OVER', promoted_from}
  end
end

-- Redis' clock, not the caller's: every buy process judges the window by the same clock.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A sale with a waiting room takes only buys with an admission of its queue (the epoch), valid
-- now by this clock, and not spent by an earlier reservation (domain/reservation.rs
-- `not_admitted`). Buy checked the token; this is the same rule where the stock is. A retry of
-- an order answered above (its key) needs none of this: it takes nothing.
local admission, admitted_index = false, false
if sale[9] then
  local index, batch, expires, epoch = string.match(ARGV[9] or '', '^(%d+) (%d+) (%d+) (%d+)$')
  if not index or epoch ~= sale[9] or now_ms >= tonumber(expires) then
    return {'NOT_ADMITTED', ''}
  end
  local spent_by = redis.call('HGET', KEYS[9], index)
  if spent_by then
    return {'ADMISSION_USED', spent_by}
  end
  admission, admitted_index = batch, index
end

-- Before the opening nothing is counted: a buyer refreshing during the countdown keeps every
-- attempt of the opening minute.
local opens = tonumber(sale[3])
if opens and now_ms < opens then
  -- The stored text, not tostring(): Lua writes numbers past 1e14 (a sale opening after the year
  -- 5138) with an exponent, which is no integer.
  return {'NOT_OPEN', sale[3]}
end

-- A buyer's attempts in this minute, when the sale limits them (domain/reservation.rs `attempt`):
-- past the limit nothing is taken, and the answer says when the next minute starts.
if sale[7] then
  local minute = math.floor(now_ms / 60000)
  local count = 1
  local seen = redis.call('HGET', KEYS[6], ARGV[3])
  if seen then
    local m, c = string.match(seen, '^(%d+):(%d+)$')
    if tonumber(m) == minute then count = tonumber(c) + 1 end
  end
  if count > tonumber(sale[7]) then
    return {'TOO_MANY', tostring(60 - math.floor((now_ms % 60000) / 1000))}
  end
  redis.call('HSET', KEYS[6], ARGV[3], minute .. ':' .. count)
end
local closes = tonumber(sale[4])
if closes and now_ms >= closes then
  return {'CLOSED', sale[4]}
end

local qty = tonumber(ARGV[4])
local limit = tonumber(sale[2])
local bought = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if bought + qty > limit then
  return {'LIMIT', tostring(math.max(limit - bought, 0))}
end

local remaining = tonumber(sale[1])
if remaining < qty then
  if remaining <= 0 then
    return {'SOLD_OUT', ''}
  end
  return {'INSUFFICIENT', tostring(remaining)}
end

redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', KEYS[2], ARGV[3], qty)
if idem_field then
  redis.call('HSET', KEYS[3], idem_field, ARGV[1] .. ' ' .. ARGV[4])
end
local order = {
  v = tonumber(ARGV[6]),
  order_id = ARGV[1],
  sale_id = ARGV[2],
  buyer = ARGV[3],
  quantity = qty,
  reserved_at_ms = now_ms,
  round = tonumber(sale[5]) or 1,
}
if idem_field then
  order.idempotency_key = ARGV[5]
end
if ARGV[8] ~= '' then
  order.sig = ARGV[8]
end
-- A checkout sale holds the units for the buyer from now (Redis' clock) until pay_by; until the
-- last hold given has ended, units may come back and the sale is not finished (retire.lua).
local pay_by = ''
if sale[8] then
  order.pay_by_ms = now_ms + tonumber(sale[8])
  pay_by = tostring(order.pay_by_ms)
  redis.call('HSET', KEYS[1], 'holds_until', pay_by)
  redis.call('ZADD', KEYS[11], order.pay_by_ms, ARGV[1])
end
-- The admission is spent by this reservation: counted once as used (not a no-show), in its
-- batch and in all.
if admission then
  redis.call('HSET', KEYS[9], admitted_index, ARGV[1])
  redis.call('HINCRBY', KEYS[8], admission, 1)
  redis.call('INCR', KEYS[10])
end
local body = cjson.encode(order)
redis.call('HSET', KEYS[4], ARGV[1], body)
redis.call('ZADD', KEYS[5], now_ms, ARGV[1])
redis.call('SET', KEYS[7], pay_by, 'PX', ARGV[7])
return {'RESERVED', body, pay_by}
