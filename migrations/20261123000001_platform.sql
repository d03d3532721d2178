-- Platform plumbing shared by every later migration.
--
-- * Schema `orbas` holds helper functions; CRM tables live in `public`.
-- * Role `orbas_app` is the group role the application runs as: it owns nothing, is no superuser and
--   cannot bypass row-level security. Login roles (see `orbas_oltp::db::provision_app_role`) are made
--   members of it. Roles are cluster-wide, so creation tolerates a concurrent or earlier creator.
-- * `orbas.current_tenant_id()` reads the transaction-local setting `app.tenant_id` and RAISES when it
--   is missing: a query that forgot its tenant fails instead of seeing nothing or everything.
-- * `orbas.secure_table(t, publish)` is the one place that makes a table tenant-owned: RLS enabled and
--   forced, the isolation policy, REPLICA IDENTITY FULL (deletes carry tenant_id and old values, and no
--   unchanged TOASTed value is ever missing from a change event), the updated_at trigger, the grants,
--   and membership in the `orbas_cdc` publication. Every later tenant-owned table must call it.

CREATE SCHEMA IF NOT EXISTS orbas;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orbas_app') THEN
        CREATE ROLE orbas_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently by another database's migration
END
$$;

GRANT USAGE ON SCHEMA orbas TO orbas_app;
GRANT USAGE ON SCHEMA public TO orbas_app;

-- Readiness checks ("is the schema current?") run as the application role.
DO $$
BEGIN
    IF to_regclass('public._sqlx_migrations') IS NOT NULL THEN
        GRANT SELECT ON TABLE public._sqlx_migrations TO orbas_app;
    END IF;
END
$$;

CREATE FUNCTION orbas.current_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    v text := current_setting('app.tenant_id', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        RAISE EXCEPTION 'no tenant in scope'
            USING ERRCODE = '42501',
                  HINT = 'run the statement in a tenant-scoped transaction (set_config(''app.tenant_id'', id, true))';
    END IF;
    RETURN v::uuid;
END
$$;

CREATE FUNCTION orbas.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE PUBLICATION orbas_cdc;

CREATE FUNCTION orbas.secure_table(t regclass, publish boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s
             USING (tenant_id = (SELECT orbas.current_tenant_id()))
             WITH CHECK (tenant_id = (SELECT orbas.current_tenant_id()))', t);
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', t);
    EXECUTE format(
        'CREATE TRIGGER touch_updated_at BEFORE UPDATE ON %s
             FOR EACH ROW EXECUTE FUNCTION orbas.touch_updated_at()', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO orbas_app', t);
    IF publish THEN
        EXECUTE format('ALTER PUBLICATION orbas_cdc ADD TABLE %s', t);
    END IF;
END
$$;
