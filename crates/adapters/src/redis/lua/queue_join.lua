-- Take a place in a sale's queue: one per buyer.
-- KEYS[1] waiting room hash  {opens_ms, sale_opens_ms, closes_ms, joined (join indexes handed
--                             out), cohort (the pre-queue's size, once drawn), drawn_ms, epoch}
-- KEYS[2] places hash        buyer -> join index of their place
-- KEYS[3] challenges zset    proof-of-work challenge ids used -> when they expire (ms): a used
--                            challenge is remembered while it could still be answered, no longer
-- KEYS[4] joins hash         buyer -> minute .. ':' .. joins in that minute
-- KEYS[5] the draw's seed    until the draw (queue_load.lua), then moved into the hash
-- KEYS[6] entries hash       the entry policy's one_per tag (a keyed hash of the claim's value,
--                            never the value) -> the buyer who entered under it
-- ARGV: buyer, the join index of the buyer's expired place to replace ('' = none), the proof of
--       work's challenge id ('' = none) and when it expires (ms), the joins one buyer may make in
--       a minute, the one_per tag ('' = the sale has no one_per)
-- Returns {status, detail, epoch}: JOINED index | EXISTING index | NO_QUEUE | NOT_OPEN opens_ms
--   | CLOSED closes_ms | REUSED | TOO_MANY seconds-to-the-next-minute | ALREADY_ENTERED (another
--   buyer entered under the tag)
local room = redis.call('HMGET', KEYS[1], 'opens_ms', 'sale_opens_ms', 'joined', 'cohort',
  'closes_ms', 'epoch')
if not room[1] then
  return {'NO_QUEUE', '', ''}
end
-- Redis' clock: every process judges the opening and the draw by the same one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(room[1]) then
  return {'NOT_OPEN', room[1], ''}
end
if room[5] and room[5] ~= '' and now >= tonumber(room[5]) then
  return {'CLOSED', room[5], ''}
end
-- The draw is fixed at the sale's opening: whoever joined before it is the pre-queue. The first
-- script to run after the opening (this one or a step) fixes it, before any later join counts.
if not room[4] and now >= tonumber(room[2]) then
  -- The draw reveals the seed: it moves into the hash, where every reader may see it.
  local seed = redis.call('GET', KEYS[5]) or redis.call('HGET', KEYS[1], 'seed') or ''
  redis.call('HSET', KEYS[1], 'cohort', room[3] or '0', 'drawn_ms', now, 'seed', seed)
  redis.call('DEL', KEYS[5])
end
-- A buyer's joins in this minute: past the limit nothing is stored, and the answer says when.
local minute = math.floor(now / 60000)
local count = 1
local seen = redis.call('HGET', KEYS[4], ARGV[1])
if seen then
  local m, c = string.match(seen, '^(%d+):(%d+)$')
  if tonumber(m) == minute then count = tonumber(c) + 1 end
end
if count > tonumber(ARGV[5]) then
  return {'TOO_MANY', tostring(60 - math.floor((now % 60000) / 1000)), ''}
end
redis.call('HSET', KEYS[4], ARGV[1], minute .. ':' .. count)
-- A challenge is single use, whatever the join does with it; one past its expiry could not be
-- answered any more, so it is forgotten.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if ARGV[3] ~= '' then
  if redis.call('ZSCORE', KEYS[3], ARGV[3]) then
    return {'REUSED', '', ''}
  end
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
-- One place per one_per value: the first buyer to enter under it holds it for the sale (their own
-- rejoins and requeues included); anyone else is refused, told nothing about who.
-- (HSETNX first: a new value, the common case, costs one command.)
if ARGV[6] ~= '' and redis.call('HSETNX', KEYS[6], ARGV[6], ARGV[1]) == 0
    and redis.call('HGET', KEYS[6], ARGV[6]) ~= ARGV[1] then
  return {'ALREADY_ENTERED', '', ''}
end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing and existing ~= ARGV[2] then
  return {'EXISTING', existing, room[6]}
end
local n = redis.call('HINCRBY', KEYS[1], 'joined', 1) - 1
redis.call('HSET', KEYS[2], ARGV[1], n)
return {'JOINED', tostring(n), room[6]}
