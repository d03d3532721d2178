-- The assistant (issue #7): each tenant's language-model settings, and the log of every question.
--
-- `ai_settings`: one row per tenant, written by an admin through `PUT /v1/admin/assistant`.
--   * `llm_base_url` / `llm_model`: the OpenAI-compatible endpoint and model the tenant's assistant uses;
--   * `llm_api_key_sealed`: the API key encrypted at rest (AES-256-GCM under the server's secrets key,
--     bound to the tenant; `orbas_oltp::secrets`) — never the key itself; NULL for endpoints without a
--     key. `llm_api_key_hint` is the key's last four characters, so an admin can tell which key is set;
--   * `llm_timeout_seconds`: how long an answer may take.
--   Not published: secrets stay out of the change stream and the lake.
--
-- `ai_queries`: one row per question asked (`POST /v1/assistant/query`): who asked, the question, the
--   answer and how it was made (`mode`, `model`), the records cited, latency and tokens, or the failure;
--   then the asker's rating ('up' / 'down') and correction (`POST /v1/assistant/queries/{id}/feedback`).
--   Published: assistant usage and quality are analytics like any other.

CREATE TABLE ai_settings (
    tenant_id           uuid PRIMARY KEY REFERENCES tenants (id),
    llm_base_url        text NOT NULL CHECK (llm_base_url ~ '^https?://' AND length(llm_base_url) <= 2000),
    llm_model           text NOT NULL CHECK (length(llm_model) BETWEEN 1 AND 200),
    llm_api_key_sealed  bytea CHECK (length(llm_api_key_sealed) BETWEEN 37 AND 8192),
    llm_api_key_hint    text CHECK (length(llm_api_key_hint) <= 8),
    llm_timeout_seconds integer NOT NULL DEFAULT 60 CHECK (llm_timeout_seconds BETWEEN 1 AND 600),
    updated_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((llm_api_key_sealed IS NULL) = (llm_api_key_hint IS NULL)),
    FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (updated_by)
);
SELECT orbas.secure_table('ai_settings', publish => false);

CREATE TABLE ai_queries (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL,
    query_text        text NOT NULL CHECK (length(query_text) BETWEEN 1 AND 8000),
    answer_text       text,
    mode              text CHECK (mode IN ('llm', 'extractive')),
    model             text,
    -- [{"n": 1, "type": "ticket", "id": "…", "title": "…"}, …]
    citations         jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(citations) = 'array'),
    status            text NOT NULL CHECK (status IN ('answered', 'failed')),
    error             text,
    streamed          boolean NOT NULL DEFAULT false,
    latency_ms        integer NOT NULL CHECK (latency_ms >= 0),
    prompt_tokens     integer CHECK (prompt_tokens >= 0),
    completion_tokens integer CHECK (completion_tokens >= 0),
    rating            text CHECK (rating IN ('up', 'down')),
    correction        text CHECK (length(correction) <= 8000),
    rated_at          timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK ((status = 'answered') = (answer_text IS NOT NULL AND mode IS NOT NULL)),
    CHECK ((status = 'failed') = (error IS NOT NULL)),
    CHECK ((rated_at IS NULL) = (rating IS NULL)),
    CHECK (correction IS NULL OR rating IS NOT NULL),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ai_queries_tenant_user_idx ON ai_queries (tenant_id, user_id, id);
SELECT orbas.secure_table('ai_queries');
