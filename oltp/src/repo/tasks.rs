//! Tasks: the activity suite (calls, emails, meetings, to-dos) with due dates, status and SLA.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Page, PageRequest, found, owner_ids};
use crate::Result;
use crate::model::{
    AccountId, ContactId, LeadId, OpportunityId, Priority, TaskId, TaskKind, TaskStatus, TenantId, TicketId, UserId,
};

/// An activity: a call, email, meeting or to-do.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub tenant_id: TenantId,
    pub kind: TaskKind,
    pub subject: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub priority: Priority,
    pub owner_id: Option<UserId>,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub lead_id: Option<LeadId>,
    pub opportunity_id: Option<OpportunityId>,
    pub ticket_id: Option<TicketId>,
    pub due_at: Option<DateTime<Utc>>,
    pub sla_due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub kind: TaskKind,
    pub subject: String,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub owner_id: Option<UserId>,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub lead_id: Option<LeadId>,
    pub opportunity_id: Option<OpportunityId>,
    pub ticket_id: Option<TicketId>,
    pub due_at: Option<DateTime<Utc>>,
    pub sla_due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub owner_id: Option<UserId>,
    /// Restricts to records owned by one of these users (the caller's `own`/`team` scope).
    pub owned_by_any: Option<Vec<UserId>>,
    pub status: Option<TaskStatus>,
    pub due_before: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, kind, subject, description, status, priority, owner_id, account_id, \
    contact_id, lead_id, opportunity_id, ticket_id, due_at, sla_due_at, completed_at, created_at, updated_at"
    };
}

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewTask) -> Result<Task> {
    let sql = concat!(
        "INSERT INTO tasks (tenant_id, id, kind, subject, description, priority, owner_id, account_id, contact_id, \
         lead_id, opportunity_id, ticket_id, due_at, sla_due_at) \
         VALUES ($1, $2, $3, $4, $5, coalesce($6, 'normal'), $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ",
        columns!()
    );
    Ok(sqlx::query_as(sql)
        .bind(tenant)
        .bind(TaskId::new())
        .bind(new.kind)
        .bind(&new.subject)
        .bind(&new.description)
        .bind(new.priority)
        .bind(new.owner_id)
        .bind(new.account_id)
        .bind(new.contact_id)
        .bind(new.lead_id)
        .bind(new.opportunity_id)
        .bind(new.ticket_id)
        .bind(new.due_at)
        .bind(new.sla_due_at)
        .fetch_one(conn)
        .await?)
}

pub async fn get(conn: &mut PgConnection, id: TaskId) -> Result<Task> {
    let sql = concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "task")
}

pub async fn list(conn: &mut PgConnection, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE id > $1 AND ($2::uuid IS NULL OR owner_id = $2) \
         AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR due_at < $4) \
         AND ($6::uuid[] IS NULL OR owner_id = ANY($6)) ORDER BY id LIMIT $5"
    );
    let rows: Vec<Task> = sqlx::query_as(sql)
        .bind(page.after_or_nil())
        .bind(filter.owner_id)
        .bind(filter.status)
        .bind(filter.due_before)
        .bind(page.fetch_limit())
        .bind(owner_ids(&filter.owned_by_any))
        .fetch_all(conn)
        .await?;
    Ok(Page::from_rows(rows, &page, |t| t.id.0))
}

/// Sets the status; `completed_at` follows it (set on completion, cleared otherwise).
pub async fn set_status(conn: &mut PgConnection, id: TaskId, status: TaskStatus) -> Result<Task> {
    let sql = concat!(
        "UPDATE tasks SET status = $2, completed_at = CASE WHEN $2 = 'completed' THEN coalesce(completed_at, now()) END \
         WHERE id = $1 RETURNING ",
        columns!()
    );
    found(sqlx::query_as(sql).bind(id).bind(status).fetch_optional(conn).await?, "task")
}

/// Open tasks of `owner` whose SLA deadline has passed at `now`.
pub async fn sla_breaches(conn: &mut PgConnection, owner: UserId, now: DateTime<Utc>) -> Result<Vec<Task>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE owner_id = $1 AND status IN ('open', 'in_progress') \
         AND sla_due_at < $2 ORDER BY sla_due_at"
    );
    Ok(sqlx::query_as(sql).bind(owner).bind(now).fetch_all(conn).await?)
}

/// Fields a client may change; `None` leaves a field as it is. `completed_at` follows `status`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    pub subject: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub owner_id: Option<UserId>,
    pub due_at: Option<DateTime<Utc>>,
    pub sla_due_at: Option<DateTime<Utc>>,
}

pub async fn get_for_update(conn: &mut PgConnection, id: TaskId) -> Result<Task> {
    let sql = concat!("SELECT ", columns!(), " FROM tasks WHERE id = $1 FOR UPDATE");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "task")
}

pub async fn update(conn: &mut PgConnection, id: TaskId, p: &TaskPatch) -> Result<Task> {
    let sql = concat!(
        "UPDATE tasks SET subject = coalesce($2, subject), description = coalesce($3, description), \
         status = coalesce($4, status), priority = coalesce($5, priority), owner_id = coalesce($6, owner_id), \
         due_at = coalesce($7, due_at), sla_due_at = coalesce($8, sla_due_at), \
         completed_at = CASE WHEN $4::text IS NULL THEN completed_at \
                             WHEN $4 = 'completed' THEN coalesce(completed_at, now()) END \
         WHERE id = $1 RETURNING ",
        columns!()
    );
    found(
        sqlx::query_as(sql)
            .bind(id)
            .bind(&p.subject)
            .bind(&p.description)
            .bind(p.status)
            .bind(p.priority)
            .bind(p.owner_id)
            .bind(p.due_at)
            .bind(p.sla_due_at)
            .fetch_optional(conn)
            .await?,
        "task",
    )
}

pub async fn delete(conn: &mut PgConnection, id: TaskId) -> Result<()> {
    let done = sqlx::query("DELETE FROM tasks WHERE id = $1").bind(id).execute(conn).await?;
    found((done.rows_affected() == 1).then_some(()), "task")
}
