-- Forecast snapshots written by `orbas models forecast` (issue #6) say more than the roll-ups the seed
-- generator writes:
--   * `metric`: what is forecast — 'bookings' (closed-won amount; every earlier row) or 'mrr' (monthly
--     recurring revenue at the end of the period);
--   * `period_start` / `period_end`: the days the amounts cover when that is not the whole fiscal
--     quarter (a model's forecast of one month); NULL: the fiscal quarter (every earlier row);
--   * `weighted_amount`: the open pipeline of the period × its stages' probabilities (roll-ups);
--   * `predicted_low` / `predicted_high`: the model's prediction interval at `interval_level` (e.g. 0.800);
--   * `method`: what made the row — 'stage_weighted' for roll-ups, the model's name for forecasts
--     ('mstl_ets_3', 'ets', 'seasonal_naive_12', …); NULL for rows made elsewhere (seeded history,
--     manager calls). A recomputation on the same day replaces only the rows that carry a method.
-- Every column is nullable or defaulted, so existing rows stay valid; CDC carries the new columns and
-- the lake sink adds them to the silver table (the table is already secured and published, see
-- 20261123000004_sales.sql).

ALTER TABLE forecast_snapshots
    ADD COLUMN metric text NOT NULL DEFAULT 'bookings' CHECK (metric IN ('bookings', 'mrr')),
    ADD COLUMN period_start date,
    ADD COLUMN period_end date,
    ADD COLUMN weighted_amount numeric(18, 2) CHECK (weighted_amount >= 0),
    ADD COLUMN predicted_low numeric(18, 2) CHECK (predicted_low >= 0),
    ADD COLUMN predicted_high numeric(18, 2),
    ADD COLUMN interval_level numeric(4, 3) CHECK (interval_level > 0 AND interval_level < 1),
    ADD COLUMN method text CHECK (method ~ '^[a-z][a-z0-9_]{1,60}$'),
    ADD CONSTRAINT forecast_snapshots_period_days
        CHECK ((period_start IS NULL) = (period_end IS NULL) AND (period_end IS NULL OR period_end >= period_start)),
    ADD CONSTRAINT forecast_snapshots_interval
        CHECK (predicted_low IS NULL OR (predicted_amount IS NOT NULL AND predicted_high IS NOT NULL
               AND interval_level IS NOT NULL AND predicted_low <= predicted_amount
               AND predicted_amount <= predicted_high));

-- "Today's snapshots of a tenant" (replace on recompute; accuracy tracking reads by period).
CREATE INDEX forecast_snapshots_tenant_day_idx ON forecast_snapshots (tenant_id, snapshot_date, source);
