-- Close-date changes of opportunities (issue #6): every change of an opportunity's expected close date,
-- with when and by whom, written in the same transaction as the change (`oltp::repo::opportunities::update`).
-- The CRM keeps only the current `close_date`; the history is what makes "how often has this deal
-- slipped" a point-in-time fact, so a model feature computed at a past cut-off counts only the pushes
-- made before it. A push moves the date later (`to_date > from_date`), a pull-in earlier.

CREATE TABLE close_date_changes (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    opportunity_id uuid NOT NULL,
    from_date      date NOT NULL,
    to_date        date NOT NULL CHECK (to_date <> from_date),
    changed_by     uuid,
    changed_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, changed_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (changed_by)
);
CREATE INDEX close_date_changes_opportunity_idx ON close_date_changes (tenant_id, opportunity_id, changed_at);
SELECT orbas.secure_table('close_date_changes');
