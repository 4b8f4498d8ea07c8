-- The operator's hand on a sale's inlet.
-- KEYS[1] waiting room hash
-- ARGV: paused ('1', '0' or '' = unchanged), pace ('' = unchanged, 'auto' = as fast as the stock
--       allows, or places per second)
-- Returns 0 when the sale has no waiting room, else 1.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
elseif ARGV[1] == '0' then
  redis.call('HDEL', KEYS[1], 'paused')
end
if ARGV[2] == 'auto' then
  redis.call('HSET', KEYS[1], 'pace', '')
elseif ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'pace', ARGV[2])
end
return 1
