-- Requests to re-snapshot single tables while the change stream runs (`orbas pipeline resnapshot`).
-- The CDC service works through them in primary-key chunks between watermarks in the WAL and records
-- its progress here once Kafka acknowledged each chunk, so a restart resumes after the last chunk
-- acknowledged. Never published.
CREATE TABLE orbas.cdc_resnapshots (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot_name    text NOT NULL,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    chunk_size   integer NOT NULL CHECK (chunk_size BETWEEN 1 AND 1000000),
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- Primary-key values (text form) of the last row of the last acknowledged chunk; NULL = start.
    last_key     text[],
    -- The largest key when the work began: rows inserted later arrive through the stream, so the
    -- chunks stop here instead of chasing a growing table.
    max_key      text[],
    chunks       integer NOT NULL DEFAULT 0,
    rows         bigint NOT NULL DEFAULT 0,
    completed_at timestamptz,
    error        text
);

CREATE INDEX cdc_resnapshots_open ON orbas.cdc_resnapshots (slot_name, id) WHERE completed_at IS NULL;
