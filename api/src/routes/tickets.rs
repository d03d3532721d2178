//! `/v1/tickets` (+ messages): support cases with SLA deadlines from the tenant's policies. The first
//! public agent reply records the first response; solving records `solved_at`.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orbas_oltp::model::{AccountId, Action, ContactId, Priority, TicketChannel, TicketId, TicketStatus, UserId};
use orbas_oltp::repo::tickets::{self, NewTicket, NewTicketMessage, Ticket, TicketMessage, TicketPatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes, parent};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    crud::router().routes(routes!(messages, post_message))
}

mod crud {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/tickets`.
        TicketQuery {
            owner_id: UserId,
            account_id: AccountId,
            contact_id: ContactId,
            status: TicketStatus,
            priority: Priority,
            channel: TicketChannel,
            /// Exact ticket number (`TCK-000042`).
            number: String,
            /// Only tickets opened at or after this instant.
            created_from: DateTime<Utc>,
        }
    );

    crate::resource!(Tickets {
        name: "tickets",
        table: tickets::TABLE,
        record: Ticket,
        new: NewTicket,
        patch: TicketPatch,
        query: TicketQuery,
        owner: owner_id,
        create: |c, p, n| tickets::create(c, p.tenant, n),
        update: |c, _p, id, patch| tickets::update(c, TicketId(id), patch),
    });

    crate::crud_handlers!(
        resource = Tickets,
        tag = "tickets",
        collection = "/v1/tickets",
        item = "/v1/tickets/{id}",
        record = Ticket,
        new = NewTicket,
        patch = TicketPatch,
        filter = TicketQuery
    );
}

/// The ticket's thread, oldest first.
#[utoipa::path(get, path = "/v1/tickets/{id}/messages", tag = "tickets", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TicketMessage>), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn messages(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    Id(id): Id<TicketId>,
) -> Result<Json<Vec<TicketMessage>>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    parent::<crud::Tickets>(tx.conn(), &auth.principal, id.0, Action::Read).await?;
    let thread = tickets::messages(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(thread))
}

/// Reply on a ticket (or leave an internal note), as the caller.
#[utoipa::path(post, path = "/v1/tickets/{id}/messages", tag = "tickets", request_body = NewTicketMessage,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = TicketMessage), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn post_message(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<TicketId>,
    Body(msg): Body<NewTicketMessage>,
) -> Result<(StatusCode, Json<TicketMessage>), Problem> {
    let p = &auth.principal;
    if msg.body.trim().is_empty() {
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "a message needs a body").with_field("body", "empty")
        );
    }
    let mut tx = state.db.begin(p.tenant).await?;
    parent::<crud::Tickets>(tx.conn(), p, id.0, Action::Update).await?;
    let posted = tickets::add_message(tx.conn(), p.tenant, id, Some(p.user), &msg.body, msg.is_internal).await?;
    audit_write(
        tx.conn(),
        &auth,
        &ctx,
        ("create", "ticket_messages"),
        posted.id.0,
        &changes(None::<&()>, Some(&posted)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(posted)))
}
