-- The lease on making a sale's draw final: the one queue process holding it builds the join list
-- (an HSCAN of the places, a ticket per place) while the others answer "drawing" and find the draw
-- final at their next read, so the pre-queue is read from Redis once, not once per process, at
-- the busiest moment of the sale. A lease outlived (its holder died) is taken by the next caller.
-- KEYS[1] waiting room hash  (reads epoch, cohort, join_root, finalizing; writes finalizing: when
--                             the lease was taken, ms)
-- ARGV: the queue's epoch, the lease (ms)
-- Returns 1 to the caller that takes the lease, 0 when another holds it, the draw is final, the
-- sale has not opened (no cohort) or the queue is another epoch's.
local w = redis.call('HMGET', KEYS[1], 'epoch', 'cohort', 'join_root', 'finalizing')
if w[1] ~= ARGV[1] or not w[2] or w[3] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if w[4] and now - tonumber(w[4]) < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'finalizing', now)
return 1
