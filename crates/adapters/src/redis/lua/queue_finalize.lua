-- Make a sale's draw final (ff-draw-v2, domain/waiting_room/draw.rs): its join list's root, the
-- beacon round mixed in, and the list's leaves, fixed once. Every queue process that finds the
-- draw waiting computes the same from the same round and the same places; the first to get here
-- writes, the others find it written. Until then queue_step.lua admits nobody.
-- KEYS[1] waiting room hash  (reads epoch, cohort; writes join_root, beacon_round,
--                             beacon_randomness, beacon_signature, final_ms)
-- KEYS[2] the join list's leaves: 32 bytes per leaf, in join index order (a string)
-- ARGV: the queue's epoch, the join root (hex), the beacon's round, randomness and signature
--       (hex; all three '' when the draw falls back to the seed alone), the leaves
-- Returns 1 when the draw is final (by this call or an earlier one), 0 for a queue of another
-- epoch (lost and rebuilt meanwhile) or one not drawn.
local room = redis.call('HMGET', KEYS[1], 'epoch', 'cohort', 'join_root')
if room[1] ~= ARGV[1] or not room[2] then
  return 0
end
if room[3] then
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[1], 'join_root', ARGV[2], 'beacon_round', ARGV[3],
  'beacon_randomness', ARGV[4], 'beacon_signature', ARGV[5], 'final_ms', now)
return 1
