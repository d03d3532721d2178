//! The 64 CRM tables the generator fills, with their columns in the order the CSV carries them.
//!
//! [`TABLES`] is in load order: a topological order of every foreign key, so loading the per-table CSV
//! files in this order (as `psql \copy` does in the benchmark) never references a row that is not there
//! yet. The generator itself emits a tenant's rows in a slightly different order (tenant-wide tables,
//! then one block of tables per shard of accounts, then quotas and forecasts), which is also FK-safe.

/// One table: its name and the columns of its CSV, in order.
#[derive(Debug)]
pub(crate) struct TableDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

macro_rules! tables {
    ($($konst:ident = $name:literal [$($col:literal),+ $(,)?];)+) => {
        /// Every table, in load order.
        pub(crate) const TABLES: &[TableDef] = &[$(TableDef { name: $name, columns: &[$($col),+] }),+];
        tables!(@idx 0usize; $($konst)+);
    };
    (@idx $n:expr; $first:ident $($rest:ident)*) => {
        pub(crate) const $first: usize = $n;
        tables!(@idx $n + 1usize; $($rest)*);
    };
    (@idx $n:expr;) => {};
}

tables! {
    TENANTS = "tenants" ["id", "name", "slug", "status", "corporate_currency", "timezone",
        "fiscal_year_start_month", "fiscal_year_named_by", "created_at", "updated_at"];
    CURRENCY_RATES = "currency_rates" ["tenant_id", "id", "from_currency", "to_currency", "rate", "valid_on",
        "created_at", "updated_at"];
    ROLES = "roles" ["tenant_id", "id", "key", "name", "description", "is_system", "created_at", "updated_at"];
    ROLE_PERMISSIONS = "role_permissions" ["tenant_id", "id", "role_id", "resource", "action", "scope",
        "created_at", "updated_at"];
    DEPARTMENTS = "departments" ["tenant_id", "id", "name", "parent_id", "created_at", "updated_at"];
    TERRITORIES = "territories" ["tenant_id", "id", "name", "region", "parent_id", "created_at", "updated_at"];
    USERS = "users" ["tenant_id", "id", "email", "full_name", "role_id", "manager_id", "territory_id",
        "department_id", "status", "timezone", "last_login_at", "created_at", "updated_at"];
    USER_CREDENTIALS = "user_credentials" ["tenant_id", "id", "password_hash", "scram_verifier",
        "failed_attempts", "locked_until", "password_set_at", "created_at", "updated_at"];
    API_KEYS = "api_keys" ["tenant_id", "id", "user_id", "name", "prefix", "key_hash", "scram_verifier",
        "scopes", "rate_limit_per_minute", "expires_at", "revoked_at", "last_used_at", "created_at",
        "updated_at"];
    SESSIONS = "sessions" ["tenant_id", "id", "user_id", "refresh_token_hash", "expires_at", "revoked_at",
        "replaced_by", "ip", "user_agent", "created_at", "updated_at"];
    AUTH_TOKENS = "auth_tokens" ["tenant_id", "id", "user_id", "purpose", "token_hash", "expires_at", "used_at",
        "created_by", "created_at", "updated_at"];
    EMAIL_OUTBOX = "email_outbox" ["tenant_id", "id", "to_address", "template", "subject", "body_text", "body_html",
        "status", "attempts", "next_attempt_at", "sent_at", "last_error", "created_at", "updated_at"];
    LOGIN_HISTORY = "login_history" ["tenant_id", "id", "user_id", "method", "succeeded", "failure_reason", "ip",
        "user_agent", "occurred_at", "created_at", "updated_at"];
    IDEMPOTENCY_KEYS = "idempotency_keys" ["tenant_id", "id", "principal_id", "key", "method", "path",
        "request_hash", "status", "response", "expires_at", "created_at", "updated_at"];
    AUDIT_LOGS = "audit_logs" ["tenant_id", "id", "actor_user_id", "actor_api_key_id", "action", "resource",
        "resource_id", "changes", "request_id", "ip", "created_at", "updated_at"];
    EMPLOYEES = "employees" ["tenant_id", "id", "user_id", "department_id", "manager_id", "full_name", "email",
        "title", "hire_date", "status", "created_at", "updated_at"];
    CAMPAIGNS = "campaigns" ["tenant_id", "id", "name", "kind", "status", "owner_id", "starts_on", "ends_on",
        "budget", "actual_cost", "currency", "created_at", "updated_at"];
    TAGS = "tags" ["tenant_id", "id", "name", "color", "created_at", "updated_at"];
    SEGMENTS = "segments" ["tenant_id", "id", "name", "entity", "definition", "is_dynamic", "owner_id",
        "created_at", "updated_at"];
    PIPELINE_STAGES = "pipeline_stages" ["tenant_id", "id", "pipeline", "name", "position", "probability",
        "is_won", "is_lost", "required_fields", "created_at", "updated_at"];
    SLA_POLICIES = "sla_policies" ["tenant_id", "id", "name", "priority", "first_response_minutes",
        "resolution_minutes", "business_hours_only", "created_at", "updated_at"];
    KNOWLEDGE_ARTICLES = "knowledge_articles" ["tenant_id", "id", "title", "slug", "body", "category",
        "language", "status", "author_id", "published_at", "view_count", "helpful_count", "created_at",
        "updated_at"];
    PRODUCTS = "products" ["tenant_id", "id", "sku", "name", "family", "description", "is_recurring",
        "is_active", "created_at", "updated_at"];
    PRICE_BOOKS = "price_books" ["tenant_id", "id", "name", "currency", "is_default", "is_active", "created_at",
        "updated_at"];
    PRICE_BOOK_ENTRIES = "price_book_entries" ["tenant_id", "id", "price_book_id", "product_id", "unit_price",
        "created_at", "updated_at"];
    AI_MODELS = "ai_models" ["tenant_id", "id", "key", "name", "task", "description", "created_at",
        "updated_at"];
    MODEL_VERSIONS = "model_versions" ["tenant_id", "id", "model_id", "version", "status", "params", "metrics",
        "training_rows", "artifact_url", "trained_at", "created_at", "updated_at"];
    KPI_DEFINITIONS = "kpi_definitions" ["tenant_id", "id", "key", "name", "description", "definition", "unit",
        "good_direction", "created_at", "updated_at", "standard_digest"];
    DASHBOARDS = "dashboards" ["tenant_id", "id", "name", "description", "owner_id", "is_shared", "filters",
        "created_at", "updated_at", "standard_digest"];
    DASHBOARD_WIDGETS = "dashboard_widgets" ["tenant_id", "id", "dashboard_id", "kpi_id", "kind", "title",
        "config", "x", "y", "w", "h", "created_at", "updated_at"];
    SCHEDULED_REPORTS = "scheduled_reports" ["tenant_id", "id", "dashboard_id", "owner_id", "name", "cron",
        "timezone", "recipients", "format", "is_active", "last_run_at", "next_run_at", "created_at",
        "updated_at"];
    SEED_TEMPLATES = "seed_templates" ["tenant_id", "id", "name", "description", "generator_version", "seed",
        "scale", "params", "created_at", "updated_at"];
    ACCOUNTS = "accounts" ["tenant_id", "id", "name", "domain", "parent_id", "owner_id", "territory_id",
        "industry", "size", "segment", "lifecycle_stage", "employee_count", "annual_revenue", "currency",
        "phone", "website", "billing_country", "billing_city", "description", "last_activity_at", "created_at",
        "updated_at"];
    MERGE_RECORDS = "merge_records" ["tenant_id", "id", "entity", "survivor_id", "merged_id", "merged_snapshot",
        "repointed", "merged_by", "created_at", "updated_at"];
    CONTACTS = "contacts" ["tenant_id", "id", "account_id", "owner_id", "first_name", "last_name", "email",
        "phone", "title", "seniority", "lifecycle_stage", "do_not_contact", "last_activity_at", "created_at",
        "updated_at"];
    CONTACT_RELATIONSHIPS = "contact_relationships" ["tenant_id", "id", "from_contact_id", "to_contact_id",
        "kind", "strength", "created_at", "updated_at"];
    OPPORTUNITIES = "opportunities" ["tenant_id", "id", "account_id", "primary_contact_id", "owner_id",
        "territory_id", "campaign_id", "stage_id", "name", "kind", "amount", "currency", "probability",
        "forecast_category", "status", "close_date", "closed_at", "lead_source", "lost_reason", "next_step",
        "last_activity_at", "created_at", "updated_at"];
    LEADS = "leads" ["tenant_id", "id", "owner_id", "campaign_id", "first_name", "last_name", "email", "phone",
        "company", "title", "industry", "company_size", "country", "source", "status", "converted_at",
        "converted_account_id", "converted_contact_id", "converted_opportunity_id", "last_activity_at",
        "created_at", "updated_at"];
    CAMPAIGN_MEMBERS = "campaign_members" ["tenant_id", "id", "campaign_id", "contact_id", "lead_id", "status",
        "responded_at", "created_at", "updated_at"];
    STAGE_HISTORIES = "stage_histories" ["tenant_id", "id", "opportunity_id", "from_stage_id", "to_stage_id",
        "changed_by", "changed_at", "amount", "currency", "probability", "created_at", "updated_at"];
    CLOSE_DATE_CHANGES = "close_date_changes" ["tenant_id", "id", "opportunity_id", "from_date", "to_date",
        "changed_by", "changed_at", "created_at", "updated_at"];
    ACCOUNT_TAGS = "account_tags" ["tenant_id", "id", "tag_id", "account_id", "created_at", "updated_at"];
    CONTACT_TAGS = "contact_tags" ["tenant_id", "id", "tag_id", "contact_id", "created_at", "updated_at"];
    LEAD_TAGS = "lead_tags" ["tenant_id", "id", "tag_id", "lead_id", "created_at", "updated_at"];
    OPPORTUNITY_TAGS = "opportunity_tags" ["tenant_id", "id", "tag_id", "opportunity_id", "created_at",
        "updated_at"];
    TICKETS = "tickets" ["tenant_id", "id", "number", "account_id", "contact_id", "owner_id", "sla_policy_id",
        "subject", "description", "status", "priority", "channel", "category", "first_response_due_at",
        "resolution_due_at", "first_responded_at", "solved_at", "csat", "created_at", "updated_at"];
    TICKET_MESSAGES = "ticket_messages" ["tenant_id", "id", "ticket_id", "author_user_id", "author_contact_id",
        "body", "is_internal", "sent_at", "created_at", "updated_at"];
    TASKS = "tasks" ["tenant_id", "id", "kind", "subject", "description", "status", "priority", "owner_id",
        "account_id", "contact_id", "lead_id", "opportunity_id", "ticket_id", "due_at", "sla_due_at",
        "completed_at", "outcome", "created_at", "updated_at"];
    CALENDAR_EVENTS = "calendar_events" ["tenant_id", "id", "owner_id", "task_id", "account_id", "contact_id",
        "opportunity_id", "title", "location", "starts_at", "ends_at", "timezone", "all_day", "created_at",
        "updated_at"];
    INTERACTION_LOGS = "interaction_logs" ["tenant_id", "id", "kind", "direction", "user_id", "account_id",
        "contact_id", "lead_id", "opportunity_id", "subject", "body", "duration_seconds", "occurred_at",
        "created_at", "updated_at"];
    DOCUMENTS = "documents" ["tenant_id", "id", "title", "kind", "status", "owner_id", "account_id",
        "opportunity_id", "created_at", "updated_at"];
    DOCUMENT_VERSIONS = "document_versions" ["tenant_id", "id", "document_id", "version", "content_type",
        "size_bytes", "sha256", "storage_url", "body", "created_by", "created_at", "updated_at"];
    QUOTES = "quotes" ["tenant_id", "id", "number", "opportunity_id", "account_id", "price_book_id", "owner_id",
        "approved_by", "status", "currency", "valid_until", "subtotal", "discount_total", "tax_total", "total",
        "created_at", "updated_at", "tax_pct"];
    QUOTE_ITEMS = "quote_items" ["tenant_id", "id", "quote_id", "product_id", "position", "description",
        "quantity", "unit_price", "discount_pct", "line_total", "created_at", "updated_at"];
    SUBSCRIPTIONS = "subscriptions" ["tenant_id", "id", "account_id", "product_id", "opportunity_id",
        "plan_name", "status", "billing_period", "seats", "active_seats_30d", "mrr", "currency", "started_at",
        "current_period_end", "cancelled_at", "cancel_reason", "created_at", "updated_at"];
    INVOICES = "invoices" ["tenant_id", "id", "number", "account_id", "subscription_id", "status", "currency",
        "issued_on", "due_on", "subtotal", "tax_total", "total", "amount_paid", "created_at", "updated_at", "tax_pct"];
    INVOICE_ITEMS = "invoice_items" ["tenant_id", "id", "invoice_id", "product_id", "description", "quantity",
        "unit_price", "amount", "created_at", "updated_at"];
    PAYMENTS = "payments" ["tenant_id", "id", "invoice_id", "account_id", "amount", "currency", "method",
        "status", "paid_at", "reference", "created_at", "updated_at"];
    ANALYTICS_EVENTS = "analytics_events" ["tenant_id", "id", "event_type", "source", "user_id", "account_id",
        "contact_id", "properties", "occurred_at", "created_at", "updated_at"];
    PREDICTIONS = "predictions" ["tenant_id", "id", "model_version_id", "entity_type", "entity_id", "score",
        "label", "explanation", "predicted_at", "created_at", "updated_at"];
    RECOMMENDATIONS = "recommendations" ["tenant_id", "id", "user_id", "entity_type", "entity_id", "action",
        "title", "rationale", "score", "status", "snoozed_until", "expires_at", "model_version_id",
        "prediction_id", "created_at", "updated_at"];
    RECOMMENDATION_FEEDBACK = "recommendation_feedback" ["tenant_id", "id", "recommendation_id", "user_id",
        "verdict", "reason", "snooze_until", "created_at", "updated_at", "reason_code"];
    QUOTAS = "quotas" ["tenant_id", "id", "user_id", "territory_id", "fiscal_year", "fiscal_quarter",
        "period_start", "period_end", "amount", "currency", "created_at", "updated_at"];
    FORECAST_SNAPSHOTS = "forecast_snapshots" ["tenant_id", "id", "user_id", "territory_id", "fiscal_year",
        "fiscal_quarter", "snapshot_date", "source", "commit_amount", "best_case_amount", "pipeline_amount",
        "closed_amount", "predicted_amount", "currency", "created_at", "updated_at"];
}

/// `COPY t (c1, c2, …) FROM STDIN WITH (FORMAT csv)` for one table.
pub(crate) fn copy_statement(table: &TableDef) -> String {
    format!("COPY {} ({}) FROM STDIN WITH (FORMAT csv)", table.name, table.columns.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_list_is_complete_and_indexed() {
        assert_eq!(TABLES.len(), 64);
        assert_eq!(TABLES[FORECAST_SNAPSHOTS].name, "forecast_snapshots");
        assert_eq!(TABLES[ACCOUNTS].name, "accounts");
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 64, "table names are unique");
    }

    #[test]
    fn every_table_matches_the_migrations() {
        let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let sql: String = files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
        for t in TABLES {
            let start = sql.find(&format!("CREATE TABLE {} (", t.name));
            assert!(start.is_some(), "{} missing in migrations", t.name);
            let body = &sql[start.unwrap_or(0)..];
            let body = &body[..body.find(");").unwrap_or(body.len())];
            let declared: Vec<&str> = body
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("--"))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|w| !matches!(*w, "UNIQUE" | "FOREIGN" | "CHECK" | "PRIMARY" | "CONSTRAINT"))
                .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .collect();
            // Columns added by later migrations come last, in migration order.
            let alter = format!("ALTER TABLE {} ADD COLUMN ", t.name);
            let added = sql.match_indices(&alter).filter_map(|(i, _)| sql[i + alter.len()..].split_whitespace().next());
            let declared: Vec<&str> = declared.into_iter().chain(added).collect();
            assert_eq!(declared, t.columns, "columns of {}", t.name);
        }
    }
}
