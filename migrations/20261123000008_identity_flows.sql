-- Identity flows of the CRM API: single-use tokens for invites and password resets, the email outbox
-- they (and later the report scheduler) are delivered through, and the login history.
--
-- auth_tokens and email_outbox carry secrets (token hashes; mails with reset links) and stay out of the
-- `orbas_cdc` publication. login_history is published: it is security analytics, without secrets.

CREATE TABLE auth_tokens (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,
    purpose     text NOT NULL CHECK (purpose IN ('invite', 'password_reset')),
    token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
    CHECK (expires_at > created_at)
);
CREATE INDEX auth_tokens_tenant_user_idx ON auth_tokens (tenant_id, user_id, purpose);
SELECT orbas.secure_table('auth_tokens', publish => false);

CREATE TABLE email_outbox (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    to_address      text NOT NULL CHECK (to_address ~ '^[^@\s]+@[^@\s]+$'),
    template        text NOT NULL CHECK (template IN ('invite', 'password_reset', 'report', 'alert')),
    subject         text NOT NULL,
    body_text       text NOT NULL,
    body_html       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
-- The sender drains due mail across tenants (as the admin role): index the queue, not the tenant.
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status IN ('pending', 'failed');
SELECT orbas.secure_table('email_outbox', publish => false);

CREATE TABLE login_history (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    user_id        uuid,
    method         text NOT NULL CHECK (method IN ('password', 'refresh', 'api_key')),
    succeeded      boolean NOT NULL,
    failure_reason text CHECK (failure_reason IN ('bad_credentials', 'locked', 'disabled', 'expired', 'revoked')),
    ip             inet,
    user_agent     text,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    CHECK (succeeded = (failure_reason IS NULL))
);
CREATE INDEX login_history_tenant_user_idx ON login_history (tenant_id, user_id, occurred_at);
SELECT orbas.secure_table('login_history');

-- Pre-authentication lookups. Before a request is authenticated the application does not know its
-- tenant, and row-level security hides every row until it does. These functions are the only way
-- across that line: each maps one non-secret or already-hashed identifier to a tenant id and reveals
-- nothing else. They run as their owner, which must be a superuser or have BYPASSRLS (`orbas doctor`
-- checks this).
CREATE FUNCTION orbas.tenant_by_slug(p_slug text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT id FROM public.tenants WHERE slug = p_slug AND status = 'active' $$;

CREATE FUNCTION orbas.tenant_by_api_key_prefix(p_prefix text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT tenant_id FROM public.api_keys WHERE prefix = p_prefix AND revoked_at IS NULL $$;

CREATE FUNCTION orbas.tenant_by_refresh_token(p_hash text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT tenant_id FROM public.sessions WHERE refresh_token_hash = p_hash $$;

CREATE FUNCTION orbas.tenant_by_auth_token(p_hash text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT tenant_id FROM public.auth_tokens WHERE token_hash = p_hash $$;

REVOKE ALL ON FUNCTION orbas.tenant_by_slug(text), orbas.tenant_by_api_key_prefix(text),
    orbas.tenant_by_refresh_token(text), orbas.tenant_by_auth_token(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orbas.tenant_by_slug(text), orbas.tenant_by_api_key_prefix(text),
    orbas.tenant_by_refresh_token(text), orbas.tenant_by_auth_token(text) TO orbas_app;
