//! Support tickets and their message threads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::table::{Filter, Op, Table, col, eq};
use super::{Page, PageRequest, found};
use crate::Result;
use crate::model::{
    AccountId, ContactId, Priority, TenantId, TicketChannel, TicketId, TicketMessageId, TicketStatus, UserId,
};

/// A support ticket.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Ticket {
    pub id: TicketId,
    pub tenant_id: TenantId,
    pub number: String,
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub subject: String,
    pub description: Option<String>,
    pub status: TicketStatus,
    pub priority: Priority,
    pub channel: TicketChannel,
    pub category: Option<String>,
    /// Customer satisfaction, 1..=5.
    pub csat: Option<i16>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub solved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new ticket; its SLA deadlines come from the tenant's SLA policy for its priority.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub subject: String,
    pub description: Option<String>,
    /// Default `normal`.
    pub priority: Option<Priority>,
    /// Default `email`.
    pub channel: Option<TicketChannel>,
    pub category: Option<String>,
}

/// Changes to a ticket. Solving or closing records `solved_at`; reopening clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    pub account_id: Option<AccountId>,
    pub contact_id: Option<ContactId>,
    pub owner_id: Option<UserId>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    pub category: Option<String>,
    #[schema(minimum = 1, maximum = 5)]
    pub csat: Option<i16>,
}

/// A message of a ticket's thread.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketMessage {
    pub body: String,
    /// An internal note, not shown to the customer (default false).
    #[serde(default)]
    pub is_internal: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TicketMessage {
    pub id: TicketMessageId,
    pub ticket_id: TicketId,
    pub author_user_id: Option<UserId>,
    pub author_contact_id: Option<ContactId>,
    pub body: String,
    pub is_internal: bool,
    pub sent_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, number, account_id, contact_id, owner_id, subject, description, status, priority, \
    channel, category, csat, first_response_due_at, resolution_due_at, first_responded_at, solved_at, created_at, updated_at"
    };
}

/// The `tickets` table, for the generic list/get/delete statements.
pub const TABLE: Table = Table {
    name: "tickets",
    entity: "ticket",
    columns: &[
        "id",
        "tenant_id",
        "number",
        "account_id",
        "contact_id",
        "owner_id",
        "subject",
        "description",
        "status",
        "priority",
        "channel",
        "category",
        "csat",
        "first_response_due_at",
        "resolution_due_at",
        "first_responded_at",
        "solved_at",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("account_id", "uuid"),
        eq("contact_id", "uuid"),
        eq("status", "text"),
        eq("priority", "text"),
        eq("channel", "text"),
        eq("number", "text"),
        Filter { param: "created_from", column: col("created_at", "timestamptz"), op: Op::From },
    ],
    sorts: &[col("number", "text"), col("created_at", "timestamptz"), col("updated_at", "timestamptz")],
};

/// Opens a ticket; its number is the next `TCK-nnnnnn` of the tenant and its SLA deadlines come from the
/// tenant's SLA policy for the ticket's priority, when there is one.
pub async fn create(conn: &mut PgConnection, tenant: TenantId, new: &NewTicket) -> Result<Ticket> {
    // Serialise numbering within the tenant: concurrent creators wait here instead of colliding.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tickets:' || $1::text, 0))")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let sql = concat!(
        "WITH next AS (SELECT 'TCK-' || lpad((coalesce(max(substring(number FROM 5)::bigint), 0) + 1)::text, 6, '0') \
                       AS number FROM tickets WHERE number ~ '^TCK-[0-9]+$'), \
              sla AS (SELECT id, first_response_minutes, resolution_minutes FROM sla_policies \
                      WHERE priority = coalesce($8, 'normal') ORDER BY name LIMIT 1) \
         INSERT INTO tickets (tenant_id, id, number, account_id, contact_id, owner_id, subject, description, priority, \
                              channel, category, sla_policy_id, first_response_due_at, resolution_due_at) \
         SELECT $1, $2, next.number, $3, $4, $5, $6, $7, coalesce($8, 'normal'), coalesce($9, 'email'), $10, sla.id, \
                now() + make_interval(mins => sla.first_response_minutes), now() + make_interval(mins => sla.resolution_minutes) \
         FROM next LEFT JOIN sla ON true RETURNING ",
        columns!()
    );
    Ok(sqlx::query_as(sql)
        .bind(tenant)
        .bind(TicketId::new())
        .bind(new.account_id)
        .bind(new.contact_id)
        .bind(new.owner_id)
        .bind(&new.subject)
        .bind(&new.description)
        .bind(new.priority)
        .bind(new.channel)
        .bind(&new.category)
        .fetch_one(conn)
        .await?)
}

pub async fn get(conn: &mut PgConnection, id: TicketId) -> Result<Ticket> {
    let sql = concat!("SELECT ", columns!(), " FROM tickets WHERE id = $1");
    found(sqlx::query_as(sql).bind(id).fetch_optional(conn).await?, "ticket")
}

pub async fn list_for_account(conn: &mut PgConnection, account: AccountId, page: PageRequest) -> Result<Page<Ticket>> {
    let sql = concat!("SELECT ", columns!(), " FROM tickets WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3");
    let rows: Vec<Ticket> =
        sqlx::query_as(sql).bind(account).bind(page.after_or_nil()).bind(page.fetch_limit()).fetch_all(conn).await?;
    Ok(Page::from_rows(rows, &page, |t| t.id.0))
}

/// Appends a message; the first public reply by an agent records the first response time.
pub async fn add_message(
    conn: &mut PgConnection,
    tenant: TenantId,
    ticket: TicketId,
    author_user: Option<UserId>,
    body: &str,
    is_internal: bool,
) -> Result<TicketMessage> {
    let msg: TicketMessage = sqlx::query_as(
        "INSERT INTO ticket_messages (tenant_id, id, ticket_id, author_user_id, body, is_internal, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now()) \
         RETURNING id, ticket_id, author_user_id, author_contact_id, body, is_internal, sent_at",
    )
    .bind(tenant)
    .bind(TicketMessageId::new())
    .bind(ticket)
    .bind(author_user)
    .bind(body)
    .bind(is_internal)
    .fetch_one(&mut *conn)
    .await?;
    if author_user.is_some() && !is_internal {
        sqlx::query(
            "UPDATE tickets SET first_responded_at = $2, status = CASE WHEN status = 'new' THEN 'open' ELSE status END \
             WHERE id = $1 AND first_responded_at IS NULL",
        )
        .bind(ticket)
        .bind(msg.sent_at)
        .execute(conn)
        .await?;
    }
    Ok(msg)
}

pub async fn messages(conn: &mut PgConnection, ticket: TicketId) -> Result<Vec<TicketMessage>> {
    Ok(sqlx::query_as(
        "SELECT id, ticket_id, author_user_id, author_contact_id, body, is_internal, sent_at \
         FROM ticket_messages WHERE ticket_id = $1 ORDER BY sent_at, id",
    )
    .bind(ticket)
    .fetch_all(conn)
    .await?)
}

/// Sets the status; solving records `solved_at`, reopening clears it.
pub async fn set_status(conn: &mut PgConnection, id: TicketId, status: TicketStatus) -> Result<Ticket> {
    let sql = concat!(
        "UPDATE tickets SET status = $2, solved_at = CASE WHEN $2 IN ('solved', 'closed') THEN coalesce(solved_at, now()) END \
         WHERE id = $1 RETURNING ",
        columns!()
    );
    found(sqlx::query_as(sql).bind(id).bind(status).fetch_optional(conn).await?, "ticket")
}

/// Applies a patch, keeping `solved_at` in step with the status.
pub async fn update(conn: &mut PgConnection, id: TicketId, patch: &TicketPatch) -> Result<Ticket> {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        patch: &'a TicketPatch,
        solved_at: Option<DateTime<Utc>>,
    }
    let current: Ticket = super::table::get(conn, &TABLE, id.0, true).await?;
    let (solved_at, nulls): (_, &[&str]) = match patch.status {
        Some(TicketStatus::Solved | TicketStatus::Closed) => (Some(current.solved_at.unwrap_or_else(Utc::now)), &[]),
        Some(_) => (None, &["solved_at"]),
        None => (None, &[]),
    };
    super::table::update_nulling(conn, &TABLE, id.0, &Row { patch, solved_at }, nulls).await
}
