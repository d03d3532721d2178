-- What the CRM API's workflows need beyond the core tables:
--   * a tax rate on quotes and invoices, so the server computes every total from lines and a rate;
--   * idempotency keys: a retried POST with the same key replays the first response instead of
--     creating twice (kept per principal for 24 hours; unpublished — request bodies are not lake data);
--   * merge records: when duplicates are merged, what was merged into what, the merged record as it
--     was, and how many child rows were re-pointed.

ALTER TABLE quotes ADD COLUMN tax_pct numeric(5, 2) NOT NULL DEFAULT 0 CHECK (tax_pct BETWEEN 0 AND 100);
ALTER TABLE invoices ADD COLUMN tax_pct numeric(5, 2) NOT NULL DEFAULT 0 CHECK (tax_pct BETWEEN 0 AND 100);

CREATE TABLE idempotency_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid PRIMARY KEY,
    -- the user or API key the key belongs to: keys of different callers never collide
    principal_id  uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method        text NOT NULL,
    path          text NOT NULL,
    -- sha-256 of the request body: the same key with another body is a client error
    request_hash  text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    -- NULL while the first request is still running
    status        smallint CHECK (status BETWEEN 100 AND 599),
    response      jsonb,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, principal_id, key),
    CHECK (expires_at > created_at)
);
CREATE INDEX idempotency_keys_tenant_expires_idx ON idempotency_keys (tenant_id, expires_at);
SELECT orbas.secure_table('idempotency_keys', publish => false);

CREATE TABLE merge_records (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    entity          text NOT NULL CHECK (entity IN ('account', 'contact', 'lead')),
    survivor_id     uuid NOT NULL,
    -- the merged record no longer exists; its id and last state are kept here
    merged_id       uuid NOT NULL,
    merged_snapshot jsonb NOT NULL,
    -- child rows re-pointed, per "table.column"
    repointed       jsonb NOT NULL DEFAULT '{}',
    merged_by       uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, merged_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (merged_by),
    CHECK (survivor_id <> merged_id)
);
CREATE INDEX merge_records_tenant_survivor_idx ON merge_records (tenant_id, entity, survivor_id);
CREATE INDEX merge_records_tenant_merged_idx ON merge_records (tenant_id, entity, merged_id);
SELECT orbas.secure_table('merge_records');
