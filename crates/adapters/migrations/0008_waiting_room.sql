-- A waiting room in front of a sale's opening (domain/waiting_room): when joining opens, how long
-- an admission may be used, the pace set (NULL: as fast as the stock allows) and the proof of
-- work asked of a joiner. All or none; the queue opens before the sale, which must have an
-- opening. The queue itself (who joined, the draw, the inlet) lives in Redis.
ALTER TABLE sales
    ADD COLUMN queue_opens_at    timestamptz,
    ADD COLUMN admission_seconds integer CHECK (admission_seconds BETWEEN 60 AND 1800),
    ADD COLUMN admit_per_second  integer CHECK (admit_per_second BETWEEN 1 AND 100000),
    ADD COLUMN pow_bits          smallint NOT NULL DEFAULT 0 CHECK (pow_bits BETWEEN 0 AND 24),
    ADD CONSTRAINT sales_waiting_room_terms_together
        CHECK ((queue_opens_at IS NULL) = (admission_seconds IS NULL)
               AND (admit_per_second IS NULL OR queue_opens_at IS NOT NULL)),
    ADD CONSTRAINT sales_queue_opens_before_the_sale
        CHECK (queue_opens_at IS NULL OR (opens_at IS NOT NULL AND queue_opens_at < opens_at));
