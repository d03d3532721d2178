-- The change stream's own bookkeeping, never published: for each replication slot, the consistent
-- point of its initial snapshot and whether the snapshot finished. A slot whose snapshot never
-- finished is dropped and re-created on start; a finished snapshot whose slot disappeared halts the
-- stream instead of silently snapshotting again (see pipeline::cdc).
CREATE TABLE orbas.cdc_snapshots (
    slot_name        text PRIMARY KEY,
    consistent_point pg_lsn NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    tables           integer,
    rows             bigint
);
