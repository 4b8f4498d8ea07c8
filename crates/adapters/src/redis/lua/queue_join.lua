-- Take a place in a sale's queue: one per buyer.
-- KEYS[1] waiting room hash  {opens_ms, sale_opens_ms, joined (join indexes handed out), cohort
--                             (the pre-queue's size, once drawn), drawn_ms}
-- KEYS[2] places hash        buyer -> join index of their place
-- KEYS[3] challenges set     proof-of-work challenge ids used
-- ARGV: buyer, the join index of the buyer's expired place to replace ('' = none), the proof of
--       work's challenge id ('' = none)
-- Returns {status, detail}: JOINED index | EXISTING index | NO_QUEUE | NOT_OPEN opens_ms | REUSED
local room = redis.call('HMGET', KEYS[1], 'opens_ms', 'sale_opens_ms', 'joined', 'cohort')
if not room[1] then
  return {'NO_QUEUE', ''}
end
-- Redis' clock: every process judges the opening and the draw by the same one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(room[1]) then
  return {'NOT_OPEN', room[1]}
end
-- The draw is fixed at the sale's opening: whoever joined before it is the pre-queue. The first
-- script to run after the opening (this one or a step) fixes it, before any later join counts.
if not room[4] and now >= tonumber(room[2]) then
  redis.call('HSET', KEYS[1], 'cohort', room[3] or '0', 'drawn_ms', now)
end
-- A challenge is single use, whatever the join does with it.
if ARGV[3] ~= '' and redis.call('SADD', KEYS[3], ARGV[3]) == 0 then
  return {'REUSED', ''}
end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing and existing ~= ARGV[2] then
  return {'EXISTING', existing}
end
local n = redis.call('HINCRBY', KEYS[1], 'joined', 1) - 1
redis.call('HSET', KEYS[2], ARGV[1], n)
return {'JOINED', tostring(n)}
