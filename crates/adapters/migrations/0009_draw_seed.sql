-- A waiting room's draw seed, kept by the authority: given once, at the sale's first load, and
-- never replaced, so a rehydrate after a Redis loss restores the published commitment instead of
-- drawing a new one. Hex of 32 random bytes; NULL for a sale without a waiting room (or not
-- loaded yet).
ALTER TABLE sales ADD COLUMN IF NOT EXISTS draw_seed text;
