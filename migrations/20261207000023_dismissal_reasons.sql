-- Why a rep dismissed a next-best action (issue #6). The free-text `reason` stays a note; the code says
-- what the dismissal means to the models and to the refresher (`orbas-models::nba`):
--   * `not_relevant`: the rep judged the advice and turned it down — it counts against the rep's
--     acceptance of the action type, and the action stays quiet for the usual period;
--   * `already_handled`: the rep is already on it outside the CRM (a call not logged) — not a verdict
--     on the advice: left out of the acceptance model, and proposed again after a short period if the
--     situation still holds;
--   * `not_mine`: the record is not the rep's to work (wrong owner or contact) — not a verdict either,
--     and nothing is proposed to that rep on that record for a long while; it is a data-quality signal
--     for managers (`gold.recommendation_acceptance.not_mine`).
-- A dismissal without a code is read as `not_relevant`.

ALTER TABLE recommendation_feedback ADD COLUMN reason_code text
    CHECK (reason_code IN ('not_relevant', 'already_handled', 'not_mine'));
ALTER TABLE recommendation_feedback
    ADD CONSTRAINT recommendation_feedback_reason_code_dismissal CHECK (reason_code IS NULL OR verdict = 'dismiss');

-- Earlier answers of the seed and of the web UI's examples carry the three canonical phrases.
UPDATE recommendation_feedback
   SET reason_code = CASE lower(btrim(reason))
                         WHEN 'not relevant' THEN 'not_relevant'
                         WHEN 'already in touch' THEN 'already_handled'
                         WHEN 'wrong contact' THEN 'not_mine'
                     END
 WHERE verdict = 'dismiss' AND lower(btrim(reason)) IN ('not relevant', 'already in touch', 'wrong contact');
