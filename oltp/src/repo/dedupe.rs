//! Duplicate detection and merging for contacts, accounts and leads.
//!
//! Detection blocks candidates in SQL (same normalised email, last name, phone tail, domain, account)
//! and scores them with [`crate::model::dedupe`]. Merging keeps the survivor, fills its empty fields
//! from the duplicate, re-points every row that references the duplicate — found in the catalog, so a
//! table added later is covered without touching this code — deletes the duplicate and leaves a
//! `merge_records` row with its last state and the re-pointed counts. One transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::dedupe::{self, Fingerprint, Reason};
use crate::model::{TenantId, UserId};
use crate::{Error, Result};

/// What kind of record is deduplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Contact,
    Account,
    Lead,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Contact => "contacts",
            Kind::Account => "accounts",
            Kind::Lead => "leads",
        }
    }

    /// The singular, as `merge_records.entity` and polymorphic `entity_type` columns spell it.
    pub fn entity(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Account => "account",
            Kind::Lead => "lead",
        }
    }

    /// `id, name, email, phone, domain, account` of the kind's rows.
    fn fingerprint_sql(self) -> &'static str {
        match self {
            Kind::Contact => {
                "SELECT id, first_name || ' ' || last_name AS name, email, phone, NULL::text AS domain, \
                 account_id AS account FROM contacts"
            }
            Kind::Account => "SELECT id, name, NULL::text AS email, phone, domain, NULL::uuid AS account FROM accounts",
            Kind::Lead => {
                "SELECT id, first_name || ' ' || last_name AS name, email, phone, NULL::text AS domain, \
                 NULL::uuid AS account FROM leads"
            }
        }
    }

    /// Blocking: rows that share at least one cheap key with the probe ($1 id, $2 email, $3 name word,
    /// $4 phone tail, $5 domain, $6 account).
    fn block_sql(self) -> &'static str {
        match self {
            Kind::Contact => {
                " WHERE id <> $1 AND (lower(email) = $2 OR lower(last_name) = $3 \
                 OR right(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), 9) = $4 \
                 OR split_part(lower(email), '@', 2) = $5 OR account_id = $6)"
            }
            Kind::Account => {
                " WHERE id <> $1 AND (lower(name) LIKE $3 || '%' \
                 OR right(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), 9) = $4 \
                 OR lower(domain) = $5 OR lower(domain) = 'www.' || $5)"
            }
            Kind::Lead => {
                " WHERE id <> $1 AND (lower(email) = $2 OR lower(last_name) = $3 \
                 OR right(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), 9) = $4 \
                 OR split_part(lower(email), '@', 2) = $5)"
            }
        }
    }

    /// Fields the survivor takes from the duplicate when its own are empty.
    fn fillable(self) -> &'static [&'static str] {
        match self {
            Kind::Contact => &["account_id", "owner_id", "email", "phone", "title", "seniority", "last_activity_at"],
            Kind::Account => &[
                "domain",
                "owner_id",
                "territory_id",
                "industry",
                "size",
                "segment",
                "employee_count",
                "annual_revenue",
                "phone",
                "website",
                "billing_country",
                "billing_city",
                "description",
                "last_activity_at",
            ],
            Kind::Lead => &[
                "owner_id",
                "campaign_id",
                "email",
                "phone",
                "company",
                "title",
                "industry",
                "company_size",
                "country",
                "last_activity_at",
            ],
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    domain: Option<String>,
    account: Option<Uuid>,
}

impl Row {
    fn fingerprint(&self) -> Fingerprint {
        let email = self.email.as_deref().and_then(dedupe::normalise_email);
        let domain = self
            .domain
            .as_deref()
            .and_then(dedupe::normalise_domain)
            .or_else(|| self.email.as_deref().and_then(dedupe::email_domain));
        Fingerprint {
            name: self.name.clone(),
            email,
            phone: self.phone.as_deref().and_then(dedupe::normalise_phone),
            domain,
            account: self.account,
        }
    }
}

/// A likely duplicate.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    pub id: Uuid,
    /// 0..=1: how sure we are this is the same record.
    pub score: f64,
    pub reasons: Vec<Reason>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The likely duplicates of record `id`, best first.
pub async fn candidates(conn: &mut PgConnection, kind: Kind, id: Uuid, limit: usize) -> Result<Vec<Candidate>> {
    let probe_sql = format!("{} WHERE id = $1", kind.fingerprint_sql());
    let probe: Row = sqlx::query_as(sqlx::AssertSqlSafe(probe_sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound { entity: kind.entity() })?;
    let fp = probe.fingerprint();
    let name_key = match kind {
        // Accounts block on the first word of the normalised company name, people on the last name.
        Kind::Account => dedupe::normalise_name(&probe.name).split(' ').next().unwrap_or_default().to_owned(),
        _ => probe.name.rsplit(' ').next().unwrap_or_default().to_lowercase(),
    };
    let sql = format!("{}{} LIMIT 1000", kind.fingerprint_sql(), kind.block_sql());
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(probe.email.as_deref().map(str::to_lowercase))
        .bind(Some(name_key).filter(|k| k.len() >= 2))
        .bind(&fp.phone)
        .bind(&fp.domain)
        .bind(fp.account)
        .fetch_all(&mut *conn)
        .await?;
    let mut out: Vec<Candidate> = rows
        .into_iter()
        .filter_map(|r| {
            let (score, reasons) = dedupe::score(&fp, &r.fingerprint());
            (score >= dedupe::MIN_SCORE).then_some(Candidate {
                id: r.id,
                score,
                reasons,
                name: r.name,
                email: r.email,
                phone: r.phone,
            })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out.truncate(limit);
    Ok(out)
}

/// The trace a merge leaves.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MergeRecord {
    pub id: Uuid,
    pub entity: String,
    pub survivor_id: Uuid,
    pub merged_id: Uuid,
    /// The merged record as it was.
    pub merged_snapshot: Value,
    /// Rows re-pointed to the survivor, per `table.column`.
    pub repointed: Value,
    pub merged_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A foreign key column referencing the merged table.
#[derive(Debug, sqlx::FromRow)]
struct Reference {
    child: String,
    col: String,
    /// Other columns of unique indexes on `child` that include `col` (one array per index).
    uniques: Vec<String>,
    /// Other FK columns of `child` pointing at the same table.
    siblings: Vec<String>,
}

/// Every `(table, column)` referencing `table.id`, from the catalog.
async fn references(conn: &mut PgConnection, table: &str) -> Result<Vec<Reference>> {
    Ok(sqlx::query_as(
        "WITH fk AS (
           SELECT c.conrelid AS rel, a.attname::text AS col
             FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
            WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND a.attname <> 'tenant_id')
         SELECT fk.rel::regclass::text AS child, quote_ident(fk.col) AS col,
                coalesce((SELECT array_agg(others) FROM (
                   SELECT array_to_string(array(
                            SELECT quote_ident(a.attname) FROM unnest(i.indkey) k
                              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k
                             WHERE a.attname NOT IN (fk.col, 'tenant_id')), ',') AS others
                     FROM pg_index i
                    WHERE i.indrelid = fk.rel AND i.indisunique AND NOT i.indisprimary
                      AND EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a
                                    ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = fk.col)) u),
                         '{}') AS uniques,
                coalesce((SELECT array_agg(quote_ident(s.col)) FROM fk s WHERE s.rel = fk.rel AND s.col <> fk.col),
                         '{}') AS siblings
           FROM fk ORDER BY 1, 2",
    )
    .bind(table)
    .fetch_all(conn)
    .await?)
}

/// Merges `duplicate` into `survivor` (same kind, same tenant).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: Kind,
    survivor: Uuid,
    duplicate: Uuid,
    by: UserId,
) -> Result<MergeRecord> {
    if survivor == duplicate {
        return Err(Error::invalid("duplicate_id: a record cannot be merged into itself"));
    }
    let table = kind.table();
    let lock = format!("SELECT id, to_jsonb(t) FROM {table} t WHERE id = ANY($1) ORDER BY id FOR UPDATE");
    let rows: Vec<(Uuid, Value)> =
        sqlx::query_as(sqlx::AssertSqlSafe(lock)).bind(vec![survivor, duplicate]).fetch_all(&mut *conn).await?;
    let snapshot = rows.iter().find(|(id, _)| *id == duplicate).map(|(_, v)| v.clone());
    let (Some(snapshot), true) = (snapshot, rows.iter().any(|(id, _)| *id == survivor)) else {
        return Err(Error::NotFound { entity: kind.entity() });
    };

    // Gaps in the survivor are filled from the duplicate.
    let fill = kind.fillable();
    let sql = format!(
        "UPDATE {table} s SET ({cols}) = ({vals}) FROM {table} d WHERE s.id = $1 AND d.id = $2",
        cols = fill.join(", "),
        vals = fill.iter().map(|c| format!("coalesce(s.{c}, d.{c})")).collect::<Vec<_>>().join(", ")
    );
    // A value the survivor may not hold twice (a unique email…) stays with neither: the fill is best effort.
    sqlx::query("SAVEPOINT merge_fill").execute(&mut *conn).await?;
    let filled = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survivor).bind(duplicate).execute(&mut *conn).await;
    let release = if filled.is_ok() { "RELEASE SAVEPOINT merge_fill" } else { "ROLLBACK TO SAVEPOINT merge_fill" };
    sqlx::query(release).execute(&mut *conn).await?;

    let mut repointed = BTreeMap::new();
    for r in references(conn, table).await? {
        let (child, col) = (&r.child, &r.col);
        // A link between the two records would become a self-link: drop it.
        for sib in &r.siblings {
            let sql = format!("DELETE FROM {child} WHERE {col} = $2 AND {sib} = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survivor).bind(duplicate).execute(&mut *conn).await?;
        }
        // Rows that would collide with the survivor's own under a unique index are redundant.
        for others in &r.uniques {
            let same = others
                .split(',')
                .filter(|c| !c.is_empty())
                .map(|c| format!(" AND s.{c} IS NOT DISTINCT FROM d.{c}"))
                .collect::<String>();
            let sql = format!(
                "DELETE FROM {child} d WHERE d.{col} = $2 AND EXISTS (SELECT 1 FROM {child} s WHERE s.{col} = $1{same})"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survivor).bind(duplicate).execute(&mut *conn).await?;
        }
        // A record of the merged table that pointed at the duplicate (a parent account) now points at the
        // survivor — except the survivor itself, which would point at itself.
        let not_self = if child == table { " AND id <> $1" } else { "" };
        let sql = format!("UPDATE {child} SET {col} = $1 WHERE {col} = $2{not_self}");
        let moved = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survivor).bind(duplicate).execute(&mut *conn).await?;
        if child == table {
            let sql = format!("UPDATE {child} SET {col} = NULL WHERE id = $1 AND {col} = $2");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(survivor).bind(duplicate).execute(&mut *conn).await?;
        }
        if moved.rows_affected() > 0 {
            repointed.insert(format!("{child}.{col}"), moved.rows_affected());
        }
    }
    // Polymorphic references (no foreign key): scores and next-best actions about the duplicate.
    for poly in ["predictions", "recommendations"] {
        let sql = format!("UPDATE {poly} SET entity_id = $1 WHERE entity_type = $3 AND entity_id = $2");
        let moved = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(survivor)
            .bind(duplicate)
            .bind(kind.entity())
            .execute(&mut *conn)
            .await?;
        if moved.rows_affected() > 0 {
            repointed.insert(format!("{poly}.entity_id"), moved.rows_affected());
        }
    }

    let sql = format!("DELETE FROM {table} WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(duplicate).execute(&mut *conn).await?;
    Ok(sqlx::query_as(
        "INSERT INTO merge_records (tenant_id, id, entity, survivor_id, merged_id, merged_snapshot, repointed, merged_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id, entity, survivor_id, merged_id, merged_snapshot, repointed, merged_by, created_at",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(kind.entity())
    .bind(survivor)
    .bind(duplicate)
    .bind(snapshot)
    .bind(serde_json::to_value(&repointed).unwrap_or_default())
    .bind(by)
    .fetch_one(conn)
    .await?)
}
