-- Threshold alerts on KPIs (issue #8): an approved KPI, optionally broken down by one of its dimensions
-- (`owner`), computed over a time window and compared with a goal, checked on a cron schedule; every
-- breach is mailed once to each recipient who may see it, in one digest per recipient and check.
--
-- `kpi_alerts`:
--   * `kpi_id`: the KPI watched (approved when written; a KPI in use by an alert cannot be deleted);
--   * `group_by`: one of the KPI's dimensions (NULL: the KPI's total);
--   * `period`: the window the KPI is computed over, as of the check, in `timezone`: the current
--     fiscal quarter (the tenant's fiscal calendar), calendar quarter, month, ISO week or day, or the
--     trailing `trailing_days` days up to today;
--   * `comparison`: 'below' (the value falls short of the goal) or 'above' (it exceeds it);
--   * the goal, one of: a constant (`goal_value`), another approved KPI computed the same way
--     (`goal_kpi_id`), or a read-only query over the lake returning the goal per group (`goal_sql`,
--     with `:from` / `:until` standing for the window's dates: quotas per owner for the period),
--     multiplied by `goal_factor` (0.8 × quota);
--   * `missing_as_zero`: a group with a goal but no KPI row counts as 0 (a rep with a quota and no
--     bookings) rather than being skipped;
--   * `recipients`: e-mail addresses of the tenant's active users (checked when written), each
--     evaluated under that recipient's own permissions;
--   * `cron` (five fields, or six with seconds) in `timezone`; `next_check_at` is claimed exactly once
--     per check, as `scheduled_reports.next_run_at` is.
--
-- `alert_events`: one row per (alert, recipient, group, period) breach — the de-duplication: a breach
-- already recorded for that recipient, group and period is never recorded (nor mailed) again; a new
-- period, or a group newly breaching, is. Rows are mailed in digests (one mail per recipient holding
-- every pending breach), retried with backoff like report deliveries.

CREATE TABLE kpi_alerts (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    owner_id        uuid NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    kpi_id          uuid NOT NULL,
    group_by        text CHECK (group_by ~ '^[a-z_][a-z0-9_]{0,62}$'),
    period          text NOT NULL CHECK (period IN
                        ('fiscal_quarter', 'quarter', 'month', 'week', 'day', 'trailing_days')),
    trailing_days   integer CHECK (trailing_days BETWEEN 1 AND 3660),
    comparison      text NOT NULL CHECK (comparison IN ('below', 'above')),
    goal_value      double precision,
    goal_kpi_id     uuid,
    goal_sql        text CHECK (length(goal_sql) BETWEEN 1 AND 20000),
    goal_factor     double precision NOT NULL DEFAULT 1 CHECK (goal_factor > 0),
    missing_as_zero boolean NOT NULL DEFAULT true,
    recipients      text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
    cron            text NOT NULL CHECK (length(cron) BETWEEN 9 AND 200),
    timezone        text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    is_active       boolean NOT NULL DEFAULT true,
    last_checked_at timestamptz,
    next_check_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK ((period = 'trailing_days') = (trailing_days IS NOT NULL)),
    CHECK (num_nonnulls(goal_value, goal_kpi_id, goal_sql) = 1),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, kpi_id) REFERENCES kpi_definitions (tenant_id, id),
    FOREIGN KEY (tenant_id, goal_kpi_id) REFERENCES kpi_definitions (tenant_id, id)
);
CREATE INDEX kpi_alerts_due_idx ON kpi_alerts (next_check_at) WHERE is_active;
CREATE INDEX kpi_alerts_kpi_idx ON kpi_alerts (tenant_id, kpi_id);
CREATE INDEX kpi_alerts_goal_kpi_idx ON kpi_alerts (tenant_id, goal_kpi_id) WHERE goal_kpi_id IS NOT NULL;
SELECT orbas.secure_table('kpi_alerts');

CREATE TABLE alert_events (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    alert_id        uuid NOT NULL,
    recipient_id    uuid,
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    -- The group's dimension value as text ('' for an alert on the KPI's total).
    group_key       text NOT NULL CHECK (length(group_key) <= 500),
    -- The window, `from..until` (ISO dates, `until` exclusive).
    period          text NOT NULL CHECK (length(period) BETWEEN 1 AND 40),
    value           double precision NOT NULL,
    -- The goal the value was compared with (factor applied).
    goal            double precision NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, alert_id, email, group_key, period),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    FOREIGN KEY (tenant_id, alert_id) REFERENCES kpi_alerts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, recipient_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (recipient_id)
);
CREATE INDEX alert_events_pending_idx ON alert_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_events_alert_idx ON alert_events (tenant_id, alert_id, created_at DESC);
SELECT orbas.secure_table('alert_events');
