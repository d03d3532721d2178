-- The SQL port (`orbas sql`) authenticates users and API keys with SCRAM-SHA-256 against the verifiers
-- in user_credentials / api_keys and records every attempt in login_history like the HTTP logins do.
-- 'forbidden': the credentials were right but the role may not query the lake.
ALTER TABLE login_history
    DROP CONSTRAINT login_history_method_check,
    ADD CONSTRAINT login_history_method_check
        CHECK (method IN ('password', 'refresh', 'api_key', 'sql_password', 'sql_api_key')),
    DROP CONSTRAINT login_history_failure_reason_check,
    ADD CONSTRAINT login_history_failure_reason_check
        CHECK (failure_reason IN ('bad_credentials', 'locked', 'disabled', 'expired', 'revoked', 'forbidden'));
