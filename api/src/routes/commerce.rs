//! `/v1/quotes` (+ items), `/v1/subscriptions`, `/v1/invoices` (+ items). Totals are computed by the
//! server from lines and tax rates; quote lines change only while the quote is a draft or in review.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use orbas_oltp::model::{
    AccountId, Action, BillingPeriod, InvoiceId, InvoiceStatus, OpportunityId, ProductId, QuoteId, QuoteItemId,
    QuoteStatus, SubscriptionId, SubscriptionStatus, UserId,
};
use orbas_oltp::repo::commerce::{
    self, Invoice, InvoiceItem, InvoicePatch, NewInvoice, NewQuote, NewQuoteItem, NewSubscription, Quote, QuoteItem,
    QuotePatch, Subscription, SubscriptionPatch,
};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes, parent};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    quotes::router()
        .routes(routes!(quote_items, add_quote_item))
        .routes(routes!(remove_quote_item))
        .merge(subscriptions::router())
        .merge(invoices::router())
        .routes(routes!(invoice_items))
}

mod quotes {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/quotes`.
        QuoteQuery { opportunity_id: OpportunityId, account_id: AccountId, owner_id: UserId, status: QuoteStatus }
    );

    crate::resource!(Quotes {
        name: "quotes",
        table: commerce::QUOTES,
        record: Quote,
        new: NewQuote,
        patch: QuotePatch,
        query: QuoteQuery,
        owner: owner_id,
        create: |c, p, n| commerce::create_quote(c, p.tenant, n),
        update: |c, _p, id, patch| commerce::update_quote(c, QuoteId(id), patch),
    });

    crate::crud_handlers!(
        resource = Quotes,
        tag = "quotes",
        collection = "/v1/quotes",
        item = "/v1/quotes/{id}",
        record = Quote,
        new = NewQuote,
        patch = QuotePatch,
        filter = QuoteQuery
    );
}

mod subscriptions {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/subscriptions`.
        SubscriptionQuery {
            account_id: AccountId,
            product_id: ProductId,
            status: SubscriptionStatus,
            billing_period: BillingPeriod,
            /// Only subscriptions whose current period ends before this instant.
            renews_before: DateTime<Utc>,
        }
    );

    crate::resource!(Subscriptions {
        name: "subscriptions",
        table: commerce::SUBSCRIPTIONS,
        record: Subscription,
        new: NewSubscription,
        patch: SubscriptionPatch,
        query: SubscriptionQuery,
        owner: none,
        create: |c, p, n| commerce::create_subscription(c, p.tenant, n),
        update: |c, _p, id, patch| commerce::update_subscription(c, SubscriptionId(id), patch),
    });

    crate::crud_handlers!(
        resource = Subscriptions,
        tag = "subscriptions",
        collection = "/v1/subscriptions",
        item = "/v1/subscriptions/{id}",
        record = Subscription,
        new = NewSubscription,
        patch = SubscriptionPatch,
        filter = SubscriptionQuery
    );
}

mod invoices {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/invoices`.
        InvoiceQuery {
            account_id: AccountId,
            subscription_id: SubscriptionId,
            status: InvoiceStatus,
            /// Only invoices due before this date.
            due_before: NaiveDate,
            /// Only invoices issued on or after this date.
            issued_from: NaiveDate,
        }
    );

    crate::resource!(Invoices {
        name: "invoices",
        table: commerce::INVOICES,
        record: Invoice,
        new: NewInvoice,
        patch: InvoicePatch,
        query: InvoiceQuery,
        owner: none,
        create: |c, p, n| commerce::create_invoice(c, p.tenant, n),
    });

    crate::crud_handlers!(
        resource = Invoices,
        tag = "invoices",
        collection = "/v1/invoices",
        item = "/v1/invoices/{id}",
        record = Invoice,
        new = NewInvoice,
        patch = InvoicePatch,
        filter = InvoiceQuery
    );
}

/// A line added to a quote, and the quote with its new totals.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QuoteItemAdded {
    pub item: QuoteItem,
    pub quote: Quote,
}

/// The quote's lines, in order.
#[utoipa::path(get, path = "/v1/quotes/{id}/items", tag = "quotes", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<QuoteItem>), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn quote_items(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    Id(id): Id<QuoteId>,
) -> Result<Json<Vec<QuoteItem>>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    parent::<quotes::Quotes>(tx.conn(), &auth.principal, id.0, Action::Read).await?;
    let items = commerce::quote_items(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(items))
}

/// Add a line (priced from the quote's price book unless `unit_price` is given); the totals follow.
#[utoipa::path(post, path = "/v1/quotes/{id}/items", tag = "quotes", request_body = NewQuoteItem,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = QuoteItemAdded), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_quote_item(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<QuoteId>,
    Body(item): Body<NewQuoteItem>,
) -> Result<(StatusCode, Json<QuoteItemAdded>), Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = parent::<quotes::Quotes>(tx.conn(), p, id.0, Action::Update).await?;
    let (item, quote) = commerce::add_quote_item(tx.conn(), p.tenant, id, &item).await?;
    audit_write(tx.conn(), &auth, &ctx, ("update", "quotes"), id.0, &changes(Some(&before), Some(&quote))).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(QuoteItemAdded { item, quote })))
}

/// Remove a line; answers the quote with its new totals.
#[utoipa::path(delete, path = "/v1/quotes/{id}/items/{item_id}", tag = "quotes",
    params(("id" = uuid::Uuid, Path), ("item_id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Quote), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn remove_quote_item(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id((id, item)): Id<(QuoteId, QuoteItemId)>,
) -> Result<Json<Quote>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = parent::<quotes::Quotes>(tx.conn(), p, id.0, Action::Update).await?;
    let quote = commerce::remove_quote_item(tx.conn(), id, item).await?;
    audit_write(tx.conn(), &auth, &ctx, ("update", "quotes"), id.0, &changes(Some(&before), Some(&quote))).await?;
    tx.commit().await?;
    Ok(Json(quote))
}

/// The invoice's lines.
#[utoipa::path(get, path = "/v1/invoices/{id}/items", tag = "invoices", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<InvoiceItem>), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn invoice_items(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: Authenticated,
    Id(id): Id<InvoiceId>,
) -> Result<Json<Vec<InvoiceItem>>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    parent::<invoices::Invoices>(tx.conn(), &auth.principal, id.0, Action::Read).await?;
    let items = commerce::invoice_items(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(items))
}
