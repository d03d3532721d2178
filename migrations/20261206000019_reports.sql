-- Scheduled reports (issue #8): a dashboard mailed on a cron schedule to people of the tenant, each
-- copy computed under its recipient's own permissions.
--
-- `scheduled_reports` gains:
--   * `format` 'xlsx' (one sheet per widget) beside 'html' (the dashboard in the mail body), 'pdf' and
--     'csv' (one file per widget);
--   * `filters`: the dashboard filters the report is computed with (as a dashboard's, e.g. a range
--     preset resolved on the day the report runs);
--   * `cron` may carry seconds (six fields) — for tests and high-frequency operational digests.
--   `recipients` are e-mail addresses of the tenant's active users (checked when written).
--
-- `report_deliveries`: one row per report run and recipient — the unit of work of the sender and its
-- de-duplication: a run is claimed once (the report's `next_run_at` moves in the same transaction),
-- each recipient's copy is sent at most once per run unless sending fails (then retried with backoff,
-- `attempts`, `last_error`), and the history says who got what when.

ALTER TABLE scheduled_reports DROP CONSTRAINT scheduled_reports_format_check;
ALTER TABLE scheduled_reports
    ADD CONSTRAINT scheduled_reports_format_check CHECK (format IN ('html', 'pdf', 'csv', 'xlsx')),
    ADD COLUMN filters jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(filters) = 'object'),
    ADD CONSTRAINT scheduled_reports_name_check CHECK (length(name) BETWEEN 1 AND 120),
    ADD CONSTRAINT scheduled_reports_cron_check CHECK (length(cron) BETWEEN 9 AND 200),
    ADD CONSTRAINT scheduled_reports_timezone_check CHECK (length(timezone) BETWEEN 1 AND 64);

CREATE TABLE report_deliveries (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid PRIMARY KEY,
    report_id     uuid NOT NULL,
    recipient_id  uuid,
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    scheduled_for timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    sent_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, report_id, email, scheduled_for),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    FOREIGN KEY (tenant_id, report_id) REFERENCES scheduled_reports (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, recipient_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (recipient_id)
);
CREATE INDEX report_deliveries_pending_idx ON report_deliveries (next_attempt_at) WHERE status = 'pending';
SELECT orbas.secure_table('report_deliveries');
