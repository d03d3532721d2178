-- What a next-best action carries beyond its title (issue #6):
--   * `kind`: the rule that proposed it (a hot lead untouched, a stalled deal, …); one open action per
--     rep, record and kind — the refresher updates it in place rather than stacking duplicates, and
--     the acceptance rate a rep shows for a kind weighs that kind's next ranking;
--   * `expected_value` in the tenant's corporate `currency`: what is at stake times the probability
--     the model gives that it matters (the reason the action ranks where it does);
--   * `factors`: the model factors behind the rationale, [{"feature", "value", "contribution"}].
-- Rows written before this migration are user-created actions without a kind.

ALTER TABLE recommendations
    ADD COLUMN kind text CHECK (kind ~ '^[a-z][a-z0-9_]{1,60}$'),
    ADD COLUMN expected_value numeric(18, 2) CHECK (expected_value >= 0),
    ADD COLUMN currency text CHECK (currency ~ '^[A-Z]{3}$'),
    ADD COLUMN factors jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD CONSTRAINT recommendations_value_has_currency CHECK (expected_value IS NULL OR currency IS NOT NULL);

-- At most one live (open or snoozed) action per rep, record and kind.
CREATE UNIQUE INDEX recommendations_live_key ON recommendations (tenant_id, user_id, entity_id, kind)
    WHERE status IN ('open', 'snoozed') AND kind IS NOT NULL;
