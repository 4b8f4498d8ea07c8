-- Give a sale its waiting room (on every load of the sale: adapters/redis/sales.rs), or take it
-- away from a sale that has none. The terms are refreshed; the queue itself (who joined, the
-- draw, the inlet) is kept, and so is the seed: the first load's stands, since its commitment may
-- have been published.
-- KEYS[1] sale hash (its `wr` flag tells reserve.lua that buys need an admission)
-- KEYS[2] waiting room hash
-- ARGV: queue opens_ms ('' = no waiting room), the sale's opens_ms, admission ms, pace ('' =
--       as fast as the stock allows), pow bits, a seed (hex) and its commitment for a queue that
--       has none yet
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'wr')
  return 0
end
redis.call('HSET', KEYS[1], 'wr', '1')
redis.call('HSET', KEYS[2], 'opens_ms', ARGV[1], 'sale_opens_ms', ARGV[2], 'admission_ms', ARGV[3],
  'pow_bits', ARGV[5])
-- The operator's pace (queue_control.lua) outlives a reload; the terms' fills a gap.
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[2], 'pace', ARGV[4])
end
redis.call('HSETNX', KEYS[2], 'seed', ARGV[6])
redis.call('HSETNX', KEYS[2], 'commitment', ARGV[7])
redis.call('PERSIST', KEYS[2])
return 1
