-- A waiting room's entry policy (domain/waiting_room/entry.rs): the claims a joiner's identity
-- must carry and the claim whose value holds one place, as JSON ({"require_claims": {...},
-- "one_per": "..."}); NULL: any buyer may join. Who entered under which value lives in Redis,
-- as a keyed hash of the value only.
ALTER TABLE sales
    ADD COLUMN IF NOT EXISTS entry_policy jsonb,
    ADD CONSTRAINT sales_entry_policy_needs_a_waiting_room
        CHECK (entry_policy IS NULL OR queue_opens_at IS NOT NULL);
