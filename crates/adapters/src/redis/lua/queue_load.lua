-- Give a sale its waiting room (on every load of the sale, before the sale itself: adapters/redis/
-- sales.rs), so there is never a moment when the sale takes buys and its gate is not up. The terms
-- are refreshed; the queue itself (who joined, the draw, the inlet) is kept, and so are the seed
-- (the ledger's: the first load's stands, since its commitment may have been published) and the
-- queue's epoch. A queue made anew (the first load, or after Redis lost it) gets the epoch given:
-- tickets and admissions of a lost queue carry another one and are told to join again.
-- KEYS[1] sale hash (its `wr` field, the queue's epoch, tells reserve.lua that buys need an
--         admission of this queue)
-- KEYS[2] the draw's seed (a key of its own, which only the queue function's user and the loader
--         may read; queue_step.lua moves it into the hash at the draw, when it is revealed)
-- KEYS[3] waiting room hash, KEYS[4..] its other keys (made persistent again: a retired sale
--         loaded again is live)
-- ARGV: queue opens_ms, the sale's opens_ms, admission ms, pace ('' = as fast as the stock
--       allows), pow bits, the seed (hex) and its commitment, the sale's closes_ms ('' = none), an
--       epoch for a queue made anew, the entry policy as JSON ('' = any buyer may join; the queue
--       function reads it from the step's state, queue_join.lua keeps who entered under it)
-- Returns the queue's epoch.
local room = KEYS[3]
redis.call('HSET', room, 'opens_ms', ARGV[1], 'sale_opens_ms', ARGV[2], 'admission_ms', ARGV[3],
  'pow_bits', ARGV[5], 'closes_ms', ARGV[8])
if ARGV[10] ~= '' then
  redis.call('HSET', room, 'entry', ARGV[10])
else
  redis.call('HDEL', room, 'entry')
end
-- The operator's pace (queue_control.lua) outlives a reload; the terms' fills a gap.
if ARGV[4] ~= '' then
  redis.call('HSETNX', room, 'pace', ARGV[4])
end
redis.call('HSETNX', room, 'commitment', ARGV[7])
redis.call('HSETNX', room, 'epoch', ARGV[9])
-- Until the draw the seed waits apart (written, never read back here); once drawn, it is in the
-- hash, revealed.
if not redis.call('HGET', room, 'cohort') then
  redis.call('SET', KEYS[2], ARGV[6])
end
local epoch = redis.call('HGET', room, 'epoch')
redis.call('HSET', KEYS[1], 'wr', epoch)
for i = 3, #KEYS do
  redis.call('PERSIST', KEYS[i])
end
return epoch
