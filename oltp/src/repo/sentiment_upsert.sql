-- A batch of sentiment scores of one model version ($2, NULL for the lexicon baseline), one row per
-- subject: new subjects are inserted, subjects already scored by that version are updated in place.
INSERT INTO sentiment_scores (tenant_id, id, subject_type, subject_id, ticket_id, ticket_message_id, interaction_id,
                              label, score, probabilities, text_sha256, model_version_id, scored_at)
SELECT $1, u.id, u.subject_type, u.subject_id,
       CASE WHEN u.subject_type = 'ticket' THEN u.subject_id END,
       CASE WHEN u.subject_type = 'ticket_message' THEN u.subject_id END,
       CASE WHEN u.subject_type = 'interaction' THEN u.subject_id END,
       u.label, u.score, u.probabilities, u.text_sha256, $2, $3
  FROM unnest($4::uuid[], $5::text[], $6::uuid[], $7::text[], $8::float8[], $9::jsonb[], $10::text[])
       AS u(id, subject_type, subject_id, label, score, probabilities, text_sha256)
    ON CONFLICT (tenant_id, subject_type, subject_id, model_version_id) DO UPDATE
   SET label = excluded.label,
       score = excluded.score,
       probabilities = excluded.probabilities,
       text_sha256 = excluded.text_sha256,
       scored_at = excluded.scored_at
