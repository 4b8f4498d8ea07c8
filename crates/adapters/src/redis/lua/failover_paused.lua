-- Whether a failover paused a sale (REDIS_PAUSE_ON_FAILOVER): reserve.lua's rule, read alone, on
-- the node that holds the sale (the operator's rebuild asks before it resumes one).
--
-- KEYS[1] the sale hash.
-- Returns 1 when this node was promoted since rehydrate.lua last rebuilt the sale (INFO's
-- master_replid2 differs from the sale's promoted_from; 40 zeros on a node never promoted),
-- else 0, also for a sale this node does not hold. Writes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local promoted_from = string.match(redis.call('INFO', 'replication'), 'master_replid2:(%w+)')
if promoted_from and promoted_from ~= string.rep('0', 40)
    and promoted_from ~= (redis.call('HGET', KEYS[1], 'promoted_from') or '') then
  return 1
end
return 0
