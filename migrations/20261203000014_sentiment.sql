-- Sentiment of customer text (issue #6): one score per scored record and model version, written by
-- `orbas models sentiment` (orbas_models::sentiment) through orbas_oltp::repo::sentiment, and from
-- there through CDC into the lake like any CRM write.
--   * the subject is a ticket (subject + description), a ticket message or a logged interaction; its
--     id is kept in `subject_id` and, for the foreign key, in exactly one of the typed columns, so a
--     score cannot point into another tenant and disappears with its record;
--   * `label` is the most probable class, `score` = P(positive) − P(negative) in [-1, 1] (a signed
--     tone for features and dashboards), `probabilities` = {"negative", "neutral", "positive"};
--   * `text_sha256` is the hash of the text that was scored: a record whose text changed since is
--     scored again, an unchanged one is not;
--   * `model_version_id` is the registered classifier (model_versions, task 'sentiment'); NULL for a
--     score of the lexicon baseline, which has no trained version. One row per subject and model
--     version (NULLs not distinct).

CREATE TABLE sentiment_scores (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    id                uuid PRIMARY KEY,
    subject_type      text NOT NULL CHECK (subject_type IN ('ticket', 'ticket_message', 'interaction')),
    subject_id        uuid NOT NULL,
    ticket_id         uuid,
    ticket_message_id uuid,
    interaction_id    uuid,
    label             text NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    score             double precision NOT NULL CHECK (score BETWEEN -1 AND 1),
    probabilities     jsonb NOT NULL DEFAULT '{}'::jsonb,
    text_sha256       text NOT NULL CHECK (text_sha256 ~ '^[0-9a-f]{64}$'),
    model_version_id  uuid,
    scored_at         timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, subject_type, subject_id, model_version_id),
    CHECK (num_nonnulls(ticket_id, ticket_message_id, interaction_id) = 1),
    CHECK (subject_id = CASE subject_type WHEN 'ticket' THEN ticket_id
                                          WHEN 'ticket_message' THEN ticket_message_id
                                          ELSE interaction_id END),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, ticket_message_id) REFERENCES ticket_messages (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, interaction_id) REFERENCES interaction_logs (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, model_version_id) REFERENCES model_versions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sentiment_scores_tenant_ticket_idx ON sentiment_scores (tenant_id, ticket_id) WHERE ticket_id IS NOT NULL;
CREATE INDEX sentiment_scores_tenant_message_idx ON sentiment_scores (tenant_id, ticket_message_id)
    WHERE ticket_message_id IS NOT NULL;
CREATE INDEX sentiment_scores_tenant_interaction_idx ON sentiment_scores (tenant_id, interaction_id)
    WHERE interaction_id IS NOT NULL;
CREATE INDEX sentiment_scores_tenant_version_idx ON sentiment_scores (tenant_id, model_version_id);
-- RLS forced, tenant policy, REPLICA IDENTITY FULL, updated_at trigger, app grants, and published to
-- the change stream (`orbas_cdc`), which is how the pipeline decides what streams.
SELECT orbas.secure_table('sentiment_scores');
