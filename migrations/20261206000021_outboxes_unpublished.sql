-- Report deliveries and alert events are outboxes — recipients' addresses, delivery attempts, SMTP
-- errors — like `email_outbox`, not CRM records: they leave the change stream, so the lake (which every
-- role with lake SQL reads tenant-wide) never holds them. Their history stays in Postgres, read through
-- the API under the reports' and alerts' permissions.
ALTER PUBLICATION orbas_cdc DROP TABLE report_deliveries, alert_events;
