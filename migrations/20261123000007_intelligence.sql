-- Analytics events, the model registry and its outputs (predictions, next-best-action recommendations
-- and the feedback reps give on them), the KPI layer, dashboards, scheduled reports and seed templates.

CREATE TABLE analytics_events (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    event_type  text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]{1,80}$'),
    source      text NOT NULL CHECK (source IN ('product', 'web', 'email', 'crm')),
    user_id     uuid,
    account_id  uuid,
    contact_id  uuid,
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (user_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX analytics_events_tenant_account_idx ON analytics_events (tenant_id, account_id, occurred_at);
CREATE INDEX analytics_events_tenant_type_idx ON analytics_events (tenant_id, event_type, occurred_at);
SELECT orbas.secure_table('analytics_events');

CREATE TABLE ai_models (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{1,60}$'),
    name        text NOT NULL,
    task        text NOT NULL CHECK (task IN ('lead_score', 'deal_score', 'churn_score', 'forecast',
                                              'next_best_action', 'embedding', 'sentiment', 'assistant')),
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, key)
);
SELECT orbas.secure_table('ai_models');

CREATE TABLE model_versions (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid PRIMARY KEY,
    model_id      uuid NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    status        text NOT NULL DEFAULT 'candidate' CHECK (status IN ('training', 'candidate', 'active', 'retired')),
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    training_rows bigint CHECK (training_rows >= 0),
    artifact_url  text,
    trained_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, model_id, version),
    FOREIGN KEY (tenant_id, model_id) REFERENCES ai_models (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (tenant_id, model_id) WHERE status = 'active';
SELECT orbas.secure_table('model_versions');

CREATE TABLE predictions (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid PRIMARY KEY,
    model_version_id uuid NOT NULL,
    entity_type      text NOT NULL CHECK (entity_type IN ('lead', 'opportunity', 'account', 'contact', 'subscription', 'ticket')),
    entity_id        uuid NOT NULL,
    score            double precision NOT NULL,
    label            text,
    -- top feature contributions: [{"feature": "days_since_activity", "value": 41, "contribution": -0.12}]
    explanation      jsonb NOT NULL DEFAULT '[]'::jsonb,
    predicted_at     timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, model_version_id) REFERENCES model_versions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX predictions_tenant_entity_idx ON predictions (tenant_id, entity_type, entity_id, predicted_at);
SELECT orbas.secure_table('predictions');

CREATE TABLE recommendations (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL, -- the rep the action is for
    entity_type      text NOT NULL CHECK (entity_type IN ('lead', 'opportunity', 'account', 'contact', 'subscription', 'ticket')),
    entity_id        uuid NOT NULL,
    action           text NOT NULL CHECK (action IN ('call', 'email', 'meeting', 'follow_up', 'send_quote', 'offer_discount',
                                                     'escalate', 'upsell', 'renewal_outreach', 'nurture', 'reassign')),
    title            text NOT NULL,
    rationale        text NOT NULL,
    score            double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'dismissed', 'snoozed', 'expired', 'done')),
    snoozed_until    timestamptz,
    expires_at       timestamptz,
    model_version_id uuid,
    prediction_id    uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, model_version_id) REFERENCES model_versions (tenant_id, id) ON DELETE SET NULL (model_version_id),
    FOREIGN KEY (tenant_id, prediction_id) REFERENCES predictions (tenant_id, id) ON DELETE SET NULL (prediction_id),
    CHECK (status <> 'snoozed' OR snoozed_until IS NOT NULL)
);
CREATE INDEX recommendations_tenant_user_idx ON recommendations (tenant_id, user_id, status, score DESC);
CREATE INDEX recommendations_tenant_entity_idx ON recommendations (tenant_id, entity_type, entity_id);
SELECT orbas.secure_table('recommendations');

CREATE TABLE recommendation_feedback (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    id                uuid PRIMARY KEY,
    recommendation_id uuid NOT NULL,
    user_id           uuid NOT NULL,
    verdict           text NOT NULL CHECK (verdict IN ('accept', 'dismiss', 'snooze')),
    reason            text,
    snooze_until      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, recommendation_id) REFERENCES recommendations (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    CHECK ((verdict = 'snooze') = (snooze_until IS NOT NULL))
);
CREATE INDEX recommendation_feedback_tenant_rec_idx ON recommendation_feedback (tenant_id, recommendation_id);
SELECT orbas.secure_table('recommendation_feedback');

CREATE TABLE kpi_definitions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{1,60}$'),
    name        text NOT NULL,
    description text,
    -- semantic definition: {"measure": "sum", "table": "opportunities", "column": "amount", "filters": [...], "time": "closed_at"}
    definition  jsonb NOT NULL,
    unit        text NOT NULL DEFAULT 'count' CHECK (unit IN ('count', 'currency', 'percent', 'days', 'ratio')),
    good_direction text NOT NULL DEFAULT 'up' CHECK (good_direction IN ('up', 'down')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, key)
);
SELECT orbas.secure_table('kpi_definitions');

CREATE TABLE dashboards (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text,
    owner_id    uuid,
    is_shared   boolean NOT NULL DEFAULT false,
    filters     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id)
);
SELECT orbas.secure_table('dashboards');

CREATE TABLE dashboard_widgets (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid PRIMARY KEY,
    dashboard_id uuid NOT NULL,
    kpi_id       uuid,
    kind         text NOT NULL CHECK (kind IN ('number', 'line', 'bar', 'table', 'pie', 'funnel')),
    title        text NOT NULL,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- grid placement
    x            smallint NOT NULL DEFAULT 0 CHECK (x >= 0),
    y            smallint NOT NULL DEFAULT 0 CHECK (y >= 0),
    w            smallint NOT NULL DEFAULT 4 CHECK (w BETWEEN 1 AND 12),
    h            smallint NOT NULL DEFAULT 3 CHECK (h BETWEEN 1 AND 12),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, dashboard_id) REFERENCES dashboards (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, kpi_id) REFERENCES kpi_definitions (tenant_id, id) ON DELETE SET NULL (kpi_id)
);
CREATE INDEX dashboard_widgets_tenant_dashboard_idx ON dashboard_widgets (tenant_id, dashboard_id);
SELECT orbas.secure_table('dashboard_widgets');

CREATE TABLE scheduled_reports (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid PRIMARY KEY,
    dashboard_id uuid NOT NULL,
    owner_id     uuid NOT NULL,
    name         text NOT NULL,
    cron         text NOT NULL, -- 5-field cron, evaluated in `timezone`
    timezone     text NOT NULL DEFAULT 'UTC',
    recipients   text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    format       text NOT NULL DEFAULT 'html' CHECK (format IN ('html', 'pdf', 'csv')),
    is_active    boolean NOT NULL DEFAULT true,
    last_run_at  timestamptz,
    next_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, dashboard_id) REFERENCES dashboards (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX scheduled_reports_due_idx ON scheduled_reports (next_run_at) WHERE is_active;
SELECT orbas.secure_table('scheduled_reports');

-- The parameters a tenant's synthetic data was generated with (reproducible: same template → same data).
CREATE TABLE seed_templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text,
    generator_version integer NOT NULL CHECK (generator_version >= 1),
    seed        bigint NOT NULL,
    scale       double precision NOT NULL CHECK (scale > 0),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT orbas.secure_table('seed_templates');
