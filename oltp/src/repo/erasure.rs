//! Erasure of a person (GDPR article 17) from the CRM: the contact or lead, the other record of the
//! same person (a lead and the contact it was converted into), and every row that is theirs.
//!
//! What is theirs is found by walking the schema's foreign keys from the person's rows, so a table
//! added later is covered without touching this module:
//! - a reference that cascades on delete (their interactions, tasks, campaign memberships, tags,
//!   relationships, product events…) makes the row theirs, and the walk goes on from it;
//! - a reference that is cleared on delete is theirs when the row is the person's own words —
//!   [`OWNED_THROUGH`]: the tickets they filed, the ticket messages they wrote — and is otherwise
//!   cleared by Postgres (an opportunity's primary contact: the deal stays, the link goes).
//!
//! Beyond foreign keys: the predictions and recommendations about any erased record, the audit
//! entries of every erased row (their `changes` hold the old values), the merge records that kept a
//! merged duplicate's snapshot, and stored idempotent responses that mention the person.
//!
//! Every row is **deleted**, never redacted in place: with `REPLICA IDENTITY FULL` an update would
//! publish the old values to the change stream once more, while a delete is followed by a tombstone,
//! which is what log compaction needs to drop every earlier message of the key. One audit entry
//! `person.erased` records the erasure itself (what was removed, counted; no personal data).
//!
//! The stores that follow the CRM (the change stream, the lake, the search index) take the deletes
//! through change data capture; [`PersonErasure::rows`] names every deleted row, so they can remove
//! the history they keep too (`orbas erase` does).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use sqlx::PgConnection;
use tracing::info;
use uuid::Uuid;

use crate::model::TenantId;
use crate::repo::audit::{self, Actor};
use crate::{Error, Result};

/// References that are cleared on delete but whose rows are the person's own words, so they go too.
pub const OWNED_THROUGH: [(&str, &str); 2] = [("tickets", "contact_id"), ("ticket_messages", "author_contact_id")];

/// The tables that hold people, and the entity type predictions and recommendations use for them.
const ENTITY_TYPES: [(&str, &str); 3] = [("contacts", "contact"), ("leads", "lead"), ("tickets", "ticket")];

/// What erasing a person removed from the CRM.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PersonErasure {
    pub tenant: Uuid,
    pub subject: Uuid,
    /// The person's records: `("contacts" | "leads", id)`, the subject first.
    pub people: Vec<(String, Uuid)>,
    /// Every deleted row, per table.
    pub rows: BTreeMap<String, Vec<Uuid>>,
    /// References to the person that Postgres cleared, per `table.column`.
    pub cleared: BTreeMap<String, u64>,
    /// The WAL position after the erasure committed: once a consumer of the change stream has passed
    /// it, it has seen every delete.
    pub lsn: String,
}

impl PersonErasure {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }

    /// Every deleted id, of any table.
    pub fn ids(&self) -> BTreeSet<Uuid> {
        self.rows.values().flatten().copied().collect()
    }
}

/// A single-column-plus-tenant foreign key of the `public` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForeignKey {
    child: String,
    column: String,
    parent: String,
    /// `confdeltype`: `c` cascade, `n` set null, `d` set default, `a` no action, `r` restrict.
    on_delete: char,
}

async fn foreign_keys(conn: &mut PgConnection) -> Result<Vec<ForeignKey>> {
    // Every tenant-scoped foreign key is (tenant_id, x) → (tenant_id, id); the walk follows x.
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text, c.confdeltype::text \
         FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND a.attname <> 'tenant_id' \
           AND cardinality(c.conkey) <= 2 \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(child, column, parent, del)| ForeignKey {
            child,
            column,
            parent,
            on_delete: del.chars().next().unwrap_or('a'),
        })
        .collect())
}

/// Whether the walk takes the rows behind `fk` as the person's.
fn owned(fk: &ForeignKey) -> bool {
    fk.on_delete == 'c' || OWNED_THROUGH.iter().any(|(t, c)| fk.child == *t && fk.column == *c)
}

/// Checks a table or column name from the catalog before it is written into a statement.
fn ident(name: &str) -> Result<&str> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        Ok(name)
    } else {
        Err(Error::Invalid { message: format!("unexpected identifier {name:?} in the schema").into() })
    }
}

/// The rows found so far, in the order their tables were first reached.
#[derive(Debug, Default)]
struct Found {
    order: Vec<String>,
    rows: BTreeMap<String, BTreeSet<Uuid>>,
}

impl Found {
    /// Adds `ids` to `table`; returns the ones that are new.
    fn add(&mut self, table: &str, ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
        let set = self.rows.entry(table.to_owned()).or_insert_with(|| {
            self.order.push(table.to_owned());
            BTreeSet::new()
        });
        ids.into_iter().filter(|id| set.insert(*id)).collect()
    }

    fn ids(&self, table: &str) -> Vec<Uuid> {
        self.rows.get(table).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

async fn ids_where(
    conn: &mut PgConnection,
    tenant: TenantId,
    table: &str,
    column: &str,
    keys: &[Uuid],
) -> Result<Vec<Uuid>> {
    let sql = format!("SELECT id FROM {} WHERE tenant_id = $1 AND {} = ANY($2)", ident(table)?, ident(column)?);
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(keys).fetch_all(&mut *conn).await?)
}

/// The person's records: the subject, and the lead or contact it was converted from or into.
async fn people(conn: &mut PgConnection, tenant: TenantId, subject: Uuid) -> Result<Found> {
    let mut found = Found::default();
    let mut queue = VecDeque::from([subject]);
    while let Some(id) = queue.pop_front() {
        let contact: Option<Uuid> = sqlx::query_scalar("SELECT id FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(c) = contact {
            found.add("contacts", [c]);
            let leads = ids_where(conn, tenant, "leads", "converted_contact_id", &[c]).await?;
            queue.extend(found.add("leads", leads));
        }
        let lead: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT converted_contact_id FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(converted) = lead {
            found.add("leads", [id]);
            if let Some(c) = converted
                && !found.ids("contacts").contains(&c)
            {
                queue.push_back(c);
            }
        }
    }
    Ok(found)
}

/// Walks from `start` (table, new ids) along every foreign key that makes a row the person's.
async fn walk(
    conn: &mut PgConnection,
    tenant: TenantId,
    fks: &[ForeignKey],
    found: &mut Found,
    start: Vec<(String, Vec<Uuid>)>,
) -> Result<()> {
    let mut queue: VecDeque<(String, Vec<Uuid>)> = start.into();
    while let Some((table, ids)) = queue.pop_front() {
        if ids.is_empty() {
            continue;
        }
        for fk in fks.iter().filter(|fk| fk.parent == table && owned(fk)) {
            let children = ids_where(conn, tenant, &fk.child, &fk.column, &ids).await?;
            let new = found.add(&fk.child, children);
            if !new.is_empty() {
                queue.push_back((fk.child.clone(), new));
            }
        }
    }
    Ok(())
}

/// Erases the person `subject` (a contact or lead id) of `tenant`, in one transaction; see the module
/// docs. Erasing someone already erased finds nothing and changes nothing (`people` is empty).
///
/// Runs as the database owner (`conn` in a transaction with the tenant in scope, e.g.
/// [`Db::begin`](crate::db::Db::begin) on the admin pool): the audit trail is append-only for the
/// application role.
pub async fn erase_person(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: Uuid,
    actor: &Actor,
) -> Result<PersonErasure> {
    let mut found = people(conn, tenant, subject).await?;
    let mut erasure = PersonErasure { tenant: tenant.0, subject, ..PersonErasure::default() };
    for table in &found.order {
        for id in found.ids(table) {
            erasure.people.push((table.clone(), id));
        }
    }
    erasure.people.sort_by_key(|(_, id)| *id != subject);
    if erasure.people.is_empty() {
        return Ok(erasure);
    }

    let fks = foreign_keys(conn).await?;
    let start = found.order.iter().map(|t| (t.clone(), found.ids(t))).collect();
    walk(conn, tenant, &fks, &mut found, start).await?;

    // Predictions and recommendations about an erased record (no foreign key: the entity is typed).
    for (table, entity) in ENTITY_TYPES {
        let ids = found.ids(table);
        if ids.is_empty() {
            continue;
        }
        let mut more = Vec::new();
        for about in ["predictions", "recommendations"] {
            let sql =
                format!("SELECT id FROM {about} WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = ANY($3)");
            let rows: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(entity)
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
            more.push((about.to_owned(), found.add(about, rows)));
        }
        walk(conn, tenant, &fks, &mut found, more).await?;
    }

    // Merge records keep the merged duplicate's last state.
    let people_ids: Vec<Uuid> = erasure.people.iter().map(|(_, id)| *id).collect();
    let merges: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM merge_records WHERE tenant_id = $1 AND (merged_id = ANY($2) OR survivor_id = ANY($2))",
    )
    .bind(tenant)
    .bind(&people_ids)
    .fetch_all(&mut *conn)
    .await?;
    found.add("merge_records", merges);

    // Stored responses of idempotent requests that mention the person (they expire within a day).
    let patterns: Vec<String> = people_ids.iter().map(|id| format!("%{id}%")).collect();
    let keys: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM idempotency_keys WHERE tenant_id = $1 AND response::text LIKE ANY($2)")
            .bind(tenant)
            .bind(&patterns)
            .fetch_all(&mut *conn)
            .await?;
    found.add("idempotency_keys", keys);

    // The audit entries of every row going, whose `changes` hold its old values.
    let all: Vec<Uuid> = found.rows.values().flatten().copied().collect();
    let audits: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM audit_logs WHERE tenant_id = $1 AND resource_id = ANY($2)")
            .bind(tenant)
            .bind(&all)
            .fetch_all(&mut *conn)
            .await?;
    found.add("audit_logs", audits);

    // References Postgres clears when the person's rows go.
    for fk in fks.iter().filter(|fk| !owned(fk) && matches!(fk.on_delete, 'n' | 'd')) {
        let Some(parents) = found.rows.get(&fk.parent) else { continue };
        let keys: Vec<Uuid> = parents.iter().copied().collect();
        let children = ids_where(conn, tenant, &fk.child, &fk.column, &keys).await?;
        let surviving = children.iter().filter(|c| !found.rows.get(&fk.child).is_some_and(|s| s.contains(c))).count();
        if surviving > 0 {
            erasure.cleared.insert(format!("{}.{}", fk.child, fk.column), surviving as u64);
        }
    }

    // Children before parents: the tables reached last go first, the people last of all (leads
    // before the contacts they may point at).
    let people_tables = ["leads", "contacts"];
    let order = found.order.iter().rev().filter(|t| !people_tables.contains(&t.as_str())).map(String::as_str);
    for table in order.chain(people_tables.into_iter().filter(|t| found.rows.contains_key(*t))) {
        let ids = found.ids(table);
        let sql = format!("DELETE FROM {} WHERE tenant_id = $1 AND id = ANY($2)", ident(table)?);
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant).bind(&ids).execute(&mut *conn).await?;
        // Rows a cascade already took are listed under their table all the same.
        erasure.rows.insert(table.to_owned(), ids);
    }

    let counts: BTreeMap<&String, usize> = erasure.rows.iter().map(|(t, ids)| (t, ids.len())).collect();
    let resource = erasure.people.first().map_or("contacts", |(t, _)| t.as_str()).to_owned();
    audit::record(
        conn,
        tenant,
        actor,
        "person.erased",
        &resource,
        subject,
        &serde_json::json!({ "erased_rows": counts }),
    )
    .await?;
    info!(tenant = %tenant.0, %subject, rows = erasure.total(), "erased a person from the CRM");
    Ok(erasure)
}

/// The WAL insert position now: after [`erase_person`]'s transaction committed, a position at or past
/// its commit record.
pub async fn wal_position(conn: &mut PgConnection) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text").fetch_one(&mut *conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(child: &str, column: &str, on_delete: char) -> ForeignKey {
        ForeignKey { child: child.into(), column: column.into(), parent: "contacts".into(), on_delete }
    }

    #[test]
    fn cascades_and_the_persons_own_words_are_theirs_other_references_are_cleared() {
        assert!(owned(&fk("interaction_logs", "contact_id", 'c')));
        assert!(owned(&fk("tickets", "contact_id", 'n')));
        assert!(owned(&fk("ticket_messages", "author_contact_id", 'n')));
        assert!(!owned(&fk("opportunities", "primary_contact_id", 'n')));
        assert!(!owned(&fk("leads", "converted_contact_id", 'a')));
    }

    #[test]
    fn identifiers_from_the_catalog_are_checked() {
        assert_eq!(ident("interaction_logs").ok(), Some("interaction_logs"));
        assert!(ident("x; DROP TABLE y").is_err());
        assert!(ident("").is_err());
        assert!(ident("Quoted").is_err());
    }

    #[test]
    fn found_rows_keep_first_reach_order_and_report_only_new_ids() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut f = Found::default();
        assert_eq!(f.add("contacts", [a]), vec![a]);
        assert_eq!(f.add("tasks", [a, b]), vec![a, b]);
        assert_eq!(f.add("contacts", [a, b]), vec![b]);
        assert_eq!(f.order, vec!["contacts", "tasks"]);
        assert_eq!(f.ids("contacts"), vec![a, b]);
    }
}
