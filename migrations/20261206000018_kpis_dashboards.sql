-- The KPI semantic layer and dashboards (issue #8).
--
-- `kpi_definitions` gains its review workflow and owner:
--   * `status`: 'draft' until an admin approves it ('approved', with `approved_by` / `approved_at`);
--     only approved KPIs appear in shared dashboards, reports and alerts. Any change to an approved
--     definition's semantics sends it back to draft;
--   * `owner_id`: who wrote it (NULL for the standard set, `is_standard`, which the system installs
--     approved for every tenant);
--   * `definition` holds the semantics as `orbas_dashboards::kpi` reads them: {"source", "measure",
--     "time", "aggregation", "grain", "dimensions": [{"name", "column"}], "filter"} — the columns
--     beside it hold what is not semantics (name, description, unit, direction, review state);
--   * `unit` may be a 'score' (CSAT on its 1–5 scale).
--
-- `dashboards` gain a stable `key` (dashboards-as-code) and `default_for_role` (the dashboard a role's
-- users open first; one per role). `filters` holds the dashboard's global filters: {"range": "last_90_days"
-- | {"from", "until"}, "territory": [...], "owner": [...], "segment": [...]}.
--
-- `dashboard_widgets` are a KPI (`kpi_id`) or an SQL query (`sql`), never both; the chart kinds are a KPI
-- tile with its delta, line, bar, stacked bar, funnel, table, heat map and pie. A KPI in use by a widget
-- cannot be deleted (the widget would silently lose its data).

-- KPIs in the earlier ad-hoc form (no `source`/`measure`), and the widgets on them, do not fit the
-- semantic layer: they go (`orbas migrate` then installs the standard set and each role's dashboard).
-- Dashboard filters of the earlier form are reset.
DELETE FROM dashboard_widgets w USING kpi_definitions k
 WHERE w.kpi_id = k.id AND NOT (k.definition ? 'source' AND k.definition ? 'measure');
DELETE FROM kpi_definitions WHERE NOT (definition ? 'source' AND definition ? 'measure');
UPDATE dashboards SET filters = '{}'::jsonb
 WHERE jsonb_typeof(filters) <> 'object'
    OR (filters - ARRAY['range', 'from', 'until', 'territory', 'owner', 'segment']) <> '{}'::jsonb;

ALTER TABLE kpi_definitions
    ADD COLUMN status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'approved')),
    ADD COLUMN owner_id    uuid,
    ADD COLUMN approved_by uuid,
    ADD COLUMN approved_at timestamptz,
    ADD COLUMN is_standard boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT kpi_definitions_owner_fk FOREIGN KEY (tenant_id, owner_id)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    ADD CONSTRAINT kpi_definitions_approver_fk FOREIGN KEY (tenant_id, approved_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (approved_by),
    ADD CONSTRAINT kpi_definitions_approval_check CHECK ((status = 'approved') = (approved_at IS NOT NULL)),
    ADD CONSTRAINT kpi_definitions_definition_check CHECK (jsonb_typeof(definition) = 'object'),
    ADD CONSTRAINT kpi_definitions_name_check CHECK (length(name) BETWEEN 1 AND 120);
ALTER TABLE kpi_definitions DROP CONSTRAINT kpi_definitions_unit_check;
ALTER TABLE kpi_definitions ADD CONSTRAINT kpi_definitions_unit_check
    CHECK (unit IN ('count', 'currency', 'percent', 'days', 'ratio', 'score'));
CREATE INDEX kpi_definitions_owner_idx ON kpi_definitions (tenant_id, owner_id);

ALTER TABLE dashboards
    ADD COLUMN key              text CHECK (key ~ '^[a-z][a-z0-9_]{1,60}$'),
    ADD COLUMN default_for_role text CHECK (default_for_role IN
        ('admin', 'manager', 'sales_rep', 'analyst', 'support_agent', 'read_only')),
    ADD CONSTRAINT dashboards_name_check CHECK (length(name) BETWEEN 1 AND 120),
    ADD CONSTRAINT dashboards_filters_check CHECK (jsonb_typeof(filters) = 'object'),
    ADD CONSTRAINT dashboards_key_unique UNIQUE (tenant_id, key);
CREATE UNIQUE INDEX dashboards_default_for_role_idx ON dashboards (tenant_id, default_for_role)
    WHERE default_for_role IS NOT NULL;

ALTER TABLE dashboard_widgets DROP CONSTRAINT dashboard_widgets_kind_check;
UPDATE dashboard_widgets SET kind = 'tile' WHERE kind = 'number';
ALTER TABLE dashboard_widgets
    ADD COLUMN sql text CHECK (length(sql) BETWEEN 1 AND 20000),
    ADD CONSTRAINT dashboard_widgets_kind_check
        CHECK (kind IN ('tile', 'line', 'bar', 'stacked_bar', 'funnel', 'table', 'heatmap', 'pie')),
    ADD CONSTRAINT dashboard_widgets_title_check CHECK (length(title) BETWEEN 1 AND 120),
    ADD CONSTRAINT dashboard_widgets_config_check CHECK (jsonb_typeof(config) = 'object');
-- Widgets left without a source by the old ON DELETE SET NULL have nothing to show.
DELETE FROM dashboard_widgets WHERE kpi_id IS NULL AND sql IS NULL;
ALTER TABLE dashboard_widgets
    ADD CONSTRAINT dashboard_widgets_source_check CHECK ((kpi_id IS NULL) <> (sql IS NULL)),
    DROP CONSTRAINT dashboard_widgets_tenant_id_kpi_id_fkey,
    ADD CONSTRAINT dashboard_widgets_kpi_fk FOREIGN KEY (tenant_id, kpi_id) REFERENCES kpi_definitions (tenant_id, id);
CREATE INDEX dashboard_widgets_kpi_idx ON dashboard_widgets (tenant_id, kpi_id) WHERE kpi_id IS NOT NULL;
