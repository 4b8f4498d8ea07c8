-- One step of a sale's queue, then its state. A step: the draw once the sale has opened, the
-- expiry of admissions not used in time, and the inlet (domain/waiting_room/queue.rs: `allowance`
-- and `to_admit` are the same rule in Rust; the memory adapter runs them). At most one step per
-- ARGV[1] ms per sale, whoever asks: a call within it only reads. Atomic, so a process killed
-- mid-step loses nobody's place. Its cost does not grow with the queue: a few reads, and one
-- write per batch that expires.
--
-- KEYS[1] waiting room hash  {opens_ms, sale_opens_ms, closes_ms, admission_ms, pow_bits, seed,
--                             commitment, epoch, joined, cohort, drawn_ms, admitted (places
--                             1..admitted admitted), expired, next_batch, last_step_ms, carry,
--                             rate, pace ('' or absent = as fast as the stock allows), paused,
--                             entry (the entry policy's JSON, absent = none), join_root and
--                             beacon_round/randomness/signature (the draw made final:
--                             queue_finalize.lua)}
-- KEYS[2] batches list       "id first last expires_ms", oldest first, while they may be used
-- KEYS[3] batch uses hash    batch id -> admissions of it spent (reserve.lua), read when the batch
--                             expires
-- KEYS[4] the draw's seed    until the draw (queue_load.lua), then moved into the hash
-- ARGV: step ms, the most a late step admits for (ms), the most the inlet overbooks (a factor);
--       then what the caller read just before, from keys this script does not write (the queue
--       function's Redis user may only read them): the sale's units left, the admissions spent
--       in all (reserve.lua counts them), the holds open (a checkout sale's, not long past their
--       pay_by); then 'peek' and the caller's clock (ms) to read the state as the last step left
--       it, writing nothing and asking Redis for no TIME (the operator's view: its Redis user
--       may not step a queue)
-- Returns {} for a sale without a waiting room, else field/value pairs, then 'batches' and
-- the live batches.
local w = {}
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then
  return {}
end
for i = 1, #flat, 2 do
  w[flat[i]] = flat[i + 1]
end
local function num(v) return tonumber(v or '0') or 0 end
local peek = ARGV[7] == 'peek'
local now
if peek then
  now = tonumber(ARGV[8])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local step_ms, max_tick, overbook = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local remaining, used, held = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

if not peek and not w.cohort and now >= num(w.sale_opens_ms) then
  w.cohort = w.joined or '0'
  -- The draw reveals the seed: it moves into the hash, where every reader may see it.
  w.seed = redis.call('GET', KEYS[4]) or w.seed or ''
  redis.call('HSET', KEYS[1], 'cohort', w.cohort, 'drawn_ms', now, 'seed', w.seed)
  redis.call('DEL', KEYS[4])
end

local closed = w.closes_ms and w.closes_ms ~= '' and now >= tonumber(w.closes_ms)
local last = w.last_step_ms and tonumber(w.last_step_ms)
-- Nobody is admitted before the draw is final: the pre-queue's order waits for its beacon round.
if not peek and w.join_root and (not last or now - last >= step_ms) then
  -- Admissions whose batch expired: the unspent ones are no-shows.
  local expired = num(w.expired)
  local expired_before = expired
  while true do
    local b = redis.call('LINDEX', KEYS[2], 0)
    if not b then break end
    local id, first, last_place, exp = string.match(b, '^(%d+) (%d+) (%d+) (%d+)$')
    if tonumber(exp) > now then break end
    local size = tonumber(last_place) - tonumber(first) + 1
    local used_of = num(redis.call('HGET', KEYS[3], id))
    expired = expired + math.max(size - used_of, 0)
    redis.call('HDEL', KEYS[3], id)
    redis.call('LPOP', KEYS[2])
  end
  local admitted, joined = num(w.admitted), num(w.joined)
  local outstanding = math.max(admitted - used - expired, 0)
  -- allowance(): never more outstanding than the units left can serve, widened by no-shows.
  local allowance = 0
  if remaining > 0 then
    local no_show = 0
    if used + expired > 0 then no_show = expired / (used + expired) end
    allowance = math.floor(remaining / math.max(1 - no_show, 1 / overbook))
  end
  -- to_admit(): the pace due since the last step, within the allowance and who waits.
  local room = math.max(math.min(allowance - outstanding, joined - admitted), 0)
  local elapsed = step_ms
  if last then elapsed = now - last end
  local n, carry = 0, 0
  if w.paused or closed then
    n, carry = 0, num(w.carry)
  elseif w.pace and w.pace ~= '' then
    local due = tonumber(w.pace) * math.max(math.min(elapsed, max_tick), 0) / 1000 + num(w.carry)
    local whole = math.floor(due)
    n = math.min(whole, room)
    if n < whole then carry = 0 else carry = due - whole end
  else
    n = room
  end
  if n > 0 then
    local id = redis.call('HINCRBY', KEYS[1], 'next_batch', 1)
    redis.call('RPUSH', KEYS[2], id .. ' ' .. (admitted + 1) .. ' ' .. (admitted + n) .. ' ' ..
      (now + num(w.admission_ms)))
    admitted = admitted + n
  end
  -- The pace measured: places admitted per second, smoothed over steps.
  local rate = num(w.rate) * 0.7 + (n * 1000 / math.max(elapsed, 1)) * 0.3
  w.admitted, w.expired, w.rate = tostring(admitted), tostring(expired), tostring(rate)
  redis.call('HSET', KEYS[1], 'admitted', admitted, 'expired', expired, 'carry', tostring(carry),
    'rate', w.rate, 'last_step_ms', now)
  redis.call('HINCRBY', KEYS[1], 'steps', 1)
  if n > 0 then w.step_admitted = tostring(n) end
  if expired > expired_before then w.step_expired = tostring(expired - expired_before) end
end

-- Sold out for good: no unit left and no hold open that could give one back.
local sold_out = w.cohort and remaining <= 0 and held == 0
local reply = {
  'now_ms', tostring(now), 'opens_ms', w.opens_ms, 'sale_opens_ms', w.sale_opens_ms or '0',
  'admission_ms', w.admission_ms or '0', 'pow_bits', w.pow_bits or '0',
  'commitment', w.commitment or '', 'joined', w.joined or '0', 'cohort', w.cohort or '',
  'admitted', w.admitted or '0', 'used', tostring(used), 'expired', w.expired or '0',
  'paused', w.paused or '', 'pace', w.pace or '', 'rate', w.rate or '0',
  'sold_out', sold_out and '1' or '', 'stepped', w.step_admitted or '',
  'stepped_expired', w.step_expired or '', 'remaining', tostring(remaining),
  'held', tostring(held), 'closed', closed and '1' or '', 'epoch', w.epoch or '0',
  'entry', w.entry or '',
}
-- The seed stays secret until the draw.
if w.cohort then
  table.insert(reply, 'seed')
  table.insert(reply, w.seed or '')
end
if w.join_root then
  for _, f in ipairs({'join_root', 'beacon_round', 'beacon_randomness', 'beacon_signature'}) do
    table.insert(reply, f)
    table.insert(reply, w[f] or '')
  end
end
table.insert(reply, 'batches')
for _, b in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  table.insert(reply, b)
end
return reply
