-- A sale may limit how often one buyer tries per minute (NULL: no limit); Redis enforces it, the
-- ledger keeps it so a rehydrate or a reset loads it again.
ALTER TABLE sales ADD COLUMN attempts_per_minute integer CHECK (attempts_per_minute > 0);
