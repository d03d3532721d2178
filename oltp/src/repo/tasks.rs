//! Tasks: the activity suite (calls, emails, meetings, to-dos) with due dates, status and SLA.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use super::table::{Filter, Op, Table, col, eq};
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

macro_rules! columns {
    () => {
        "id, tenant_id, kind, subject, description, status, priority, owner_id, account_id, \
    contact_id, lead_id, opportunity_id, ticket_id, due_at, sla_due_at, completed_at, created_at, updated_at"
    };
}

/// The `tasks` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "tasks",
    entity: "task",
    columns: &[
        "id",
        "tenant_id",
        "kind",
        "subject",
        "description",
        "status",
        "priority",
        "owner_id",
        "account_id",
        "contact_id",
        "lead_id",
        "opportunity_id",
        "ticket_id",
        "due_at",
        "sla_due_at",
        "completed_at",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("status", "text"),
        eq("kind", "text"),
        eq("priority", "text"),
        eq("account_id", "uuid"),
        eq("contact_id", "uuid"),
        eq("lead_id", "uuid"),
        eq("opportunity_id", "uuid"),
        eq("ticket_id", "uuid"),
        Filter { param: "due_before", column: col("due_at", "timestamptz"), op: Op::Before },
    ],
    sorts: &[col("created_at", "timestamptz"), col("updated_at", "timestamptz")],
};

pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewTask) -> Result<Task> {
    super::table::insert(conn, &TABLE, tenant, TaskId::new().0, new).await
}

pub async fn get(conn: &mut PgConnection, id: TaskId) -> Result<Task> {
    super::table::get(conn, &TABLE, id.0, false).await
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
