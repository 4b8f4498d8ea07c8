-- Begin a sale's reset, atomically with its pending check: either nothing changes (orders are
-- reserved and not settled, and the reset is not forced), or the sale is frozen for the new round
-- (reserve.lua refuses every buy until finish_reset.lua) and its outbox moves aside, kept until
-- the reset is finished, so the caller can record those orders. A crash anywhere leaves the sale
-- frozen, never split; running the reset again resumes it (this script answers the round and
-- orders of the reset under way).
--
-- KEYS: sale hash, outbox hash, outbox zset, stash hash (the outbox moved aside)
-- ARGV: round (the one to start, when no reset is under way), force ('1' or '0')
-- Returns {status, round, order message ...}:
--   FROZEN round message... | PENDING count | NO_SALE round (the store does not hold the sale)
local resetting = redis.call('HGET', KEYS[1], 'resetting')
if resetting then
  local out = {'FROZEN', resetting}
  for _, m in ipairs(redis.call('HVALS', KEYS[4])) do out[#out + 1] = m end
  return out
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NO_SALE', ARGV[1]}
end
local pending = redis.call('HLEN', KEYS[2])
if pending > 0 and ARGV[2] ~= '1' then
  return {'PENDING', tostring(pending)}
end
redis.call('DEL', KEYS[4])
if pending > 0 then
  redis.call('RENAME', KEYS[2], KEYS[4])
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'resetting', ARGV[1])
local out = {'FROZEN', ARGV[1]}
for _, m in ipairs(redis.call('HVALS', KEYS[4])) do out[#out + 1] = m end
return out
