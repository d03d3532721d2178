//! Quote to cash: quotes with their items, subscriptions, invoices with their items. Document numbers
//! continue each tenant's sequence (`Q-2026-000042`, `INV-2026-0000042`); every total is computed
//! here from the lines and the tax rate ([`crate::model::pricing`]) — clients never send totals.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::found;
use super::table::{self, Filter, Op, Table, col, eq};
use crate::model::pricing::{self, Line, LineAmounts};
use crate::model::{
    AccountId, BillingPeriod, InvoiceId, InvoiceItemId, InvoiceStatus, OpportunityId, PriceBookId, ProductId, QuoteId,
    QuoteItemId, QuoteStatus, SubscriptionId, SubscriptionStatus, TenantId, UserId,
};
use crate::{Error, Result};

/// The next number of a document sequence: `prefix` + the year + the tenant's counter, which runs on
/// across years. Serialised per tenant and sequence, so concurrent creators wait instead of colliding.
async fn next_number(conn: &mut PgConnection, table: &Table, prefix: &str, width: usize) -> Result<String> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(current_setting('app.tenant_id') || $1, 0))")
        .bind(table.name)
        .execute(&mut *conn)
        .await?;
    let sql = format!(
        "SELECT coalesce(max(substring(number FROM '([0-9]+)$')::bigint), 0) FROM {} WHERE number LIKE $1 || '-%'",
        table.name
    );
    let last: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(prefix).fetch_one(&mut *conn).await?;
    Ok(format!("{prefix}-{}-{:0width$}", Utc::now().year(), last + 1))
}

// ---------------------------------------------------------------------------------------------------
// Quotes

/// A quote for an opportunity. Totals are the sums of its items' amounts plus tax.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Quote {
    pub id: QuoteId,
    pub tenant_id: TenantId,
    pub number: String,
    pub opportunity_id: OpportunityId,
    pub account_id: AccountId,
    pub price_book_id: Option<PriceBookId>,
    pub owner_id: Option<UserId>,
    pub approved_by: Option<UserId>,
    pub status: QuoteStatus,
    pub currency: String,
    pub valid_until: Option<NaiveDate>,
    /// Percent of the discounted subtotal.
    pub tax_pct: Decimal,
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A line of a new quote. Without `unit_price` the product's price in the quote's price book is used.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuoteItem {
    pub product_id: ProductId,
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    /// Percent off this line (default 0).
    pub discount_pct: Option<Decimal>,
    pub description: Option<String>,
}

/// A new quote: the account and currency come from the opportunity unless given.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuote {
    pub opportunity_id: OpportunityId,
    pub price_book_id: Option<PriceBookId>,
    pub owner_id: Option<UserId>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    pub valid_until: Option<NaiveDate>,
    pub tax_pct: Option<Decimal>,
    #[serde(default)]
    pub items: Vec<NewQuoteItem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotePatch {
    pub owner_id: Option<UserId>,
    pub status: Option<QuoteStatus>,
    pub valid_until: Option<NaiveDate>,
    pub tax_pct: Option<Decimal>,
}

/// A line of a quote.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct QuoteItem {
    pub id: QuoteItemId,
    pub quote_id: QuoteId,
    pub product_id: ProductId,
    pub position: i16,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub discount_pct: Decimal,
    /// quantity × unit_price less the discount, in cents.
    pub line_total: Decimal,
}

pub const QUOTES: Table = Table {
    name: "quotes",
    entity: "quote",
    columns: &[
        "id",
        "tenant_id",
        "number",
        "opportunity_id",
        "account_id",
        "price_book_id",
        "owner_id",
        "approved_by",
        "status",
        "currency",
        "valid_until",
        "tax_pct",
        "subtotal",
        "discount_total",
        "tax_total",
        "total",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[eq("opportunity_id", "uuid"), eq("account_id", "uuid"), eq("owner_id", "uuid"), eq("status", "text")],
    sorts: &[col("number", "text"), col("total", "numeric"), col("created_at", "timestamptz")],
};

const ITEM_COLUMNS: &str =
    "id, quote_id, product_id, position, description, quantity, unit_price, discount_pct, line_total";

/// Statuses in which a quote's lines may still change.
fn editable(status: QuoteStatus) -> bool {
    matches!(status, QuoteStatus::Draft | QuoteStatus::InReview)
}

/// Creates a quote with its items and totals.
pub async fn create_quote(conn: &mut PgConnection, tenant: TenantId, new: &NewQuote) -> Result<Quote> {
    let (account, opp_currency): (AccountId, String) =
        sqlx::query_as("SELECT account_id, currency FROM opportunities WHERE id = $1")
            .bind(new.opportunity_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::invalid("opportunity_id: no such opportunity"))?;
    let tax_pct = new.tax_pct.unwrap_or_default();
    pricing::check_pct("tax_pct", tax_pct)?;
    let number = next_number(conn, &QUOTES, "Q", 6).await?;
    let id = QuoteId::new();
    let sql = format!(
        "INSERT INTO quotes (tenant_id, id, number, opportunity_id, account_id, price_book_id, owner_id, currency, \
         valid_until, tax_pct) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {}",
        QUOTES.columns.join(", ")
    );
    let _: Quote = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&number)
        .bind(new.opportunity_id)
        .bind(account)
        .bind(new.price_book_id)
        .bind(new.owner_id)
        .bind(new.currency.as_deref().unwrap_or(&opp_currency))
        .bind(new.valid_until)
        .bind(tax_pct)
        .fetch_one(&mut *conn)
        .await?;
    for (i, item) in new.items.iter().enumerate() {
        insert_item(conn, tenant, id, new.price_book_id, i, item)
            .await
            .map_err(|e| prefix_field(e, &format!("items[{i}]")))?;
    }
    recompute_quote(conn, id).await
}

fn prefix_field(e: Error, at: &str) -> Error {
    match e {
        Error::Invalid { message } => Error::invalid(format!("{at}.{message}")),
        other => other,
    }
}

async fn insert_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    quote: QuoteId,
    price_book: Option<PriceBookId>,
    position: usize,
    item: &NewQuoteItem,
) -> Result<QuoteItem> {
    let unit_price = match item.unit_price {
        Some(p) => p,
        None => {
            sqlx::query_scalar("SELECT unit_price FROM price_book_entries WHERE price_book_id = $1 AND product_id = $2")
                .bind(price_book)
                .bind(item.product_id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| {
                    Error::invalid("unit_price: required: the product has no price in the quote's price book")
                })?
        }
    };
    let discount_pct = item.discount_pct.unwrap_or_default();
    let amounts = Line { quantity: item.quantity, unit_price, discount_pct }.amounts()?;
    let position = i16::try_from(position).map_err(|_| Error::invalid("a quote has at most 32767 items"))?;
    let sql = format!(
        "INSERT INTO quote_items (tenant_id, id, quote_id, product_id, position, description, quantity, unit_price, \
         discount_pct, line_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {ITEM_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(QuoteItemId::new())
        .bind(quote)
        .bind(item.product_id)
        .bind(position)
        .bind(&item.description)
        .bind(item.quantity)
        .bind(unit_price)
        .bind(discount_pct)
        .bind(amounts.net)
        .fetch_one(conn)
        .await?)
}

/// Recomputes a quote's totals from its items (after any change to lines or the tax rate).
async fn recompute_quote(conn: &mut PgConnection, id: QuoteId) -> Result<Quote> {
    let lines: Vec<(Decimal, Decimal, Decimal)> =
        sqlx::query_as("SELECT quantity, unit_price, discount_pct FROM quote_items WHERE quote_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let priced = lines
        .iter()
        .map(|(q, p, d)| Line { quantity: *q, unit_price: *p, discount_pct: *d }.amounts())
        .collect::<Result<Vec<LineAmounts>>>()?;
    let tax_pct: Decimal = sqlx::query_scalar("SELECT tax_pct FROM quotes WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound { entity: "quote" })?;
    let t = pricing::totals(&priced, tax_pct)?;
    let sql = format!(
        "UPDATE quotes SET subtotal = $2, discount_total = $3, tax_total = $4, total = $5 WHERE id = $1 RETURNING {}",
        QUOTES.columns.join(", ")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(t.subtotal)
        .bind(t.discount_total)
        .bind(t.tax_total)
        .bind(t.total)
        .fetch_one(conn)
        .await?)
}

/// Applies a patch; a new tax rate recomputes the totals.
pub async fn update_quote(conn: &mut PgConnection, id: QuoteId, patch: &QuotePatch) -> Result<Quote> {
    if let Some(t) = patch.tax_pct {
        pricing::check_pct("tax_pct", t)?;
    }
    let q: Quote = table::update(conn, &QUOTES, id.0, patch).await?;
    if patch.tax_pct.is_some() { recompute_quote(conn, id).await } else { Ok(q) }
}

pub async fn quote_items(conn: &mut PgConnection, quote: QuoteId) -> Result<Vec<QuoteItem>> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM quote_items WHERE quote_id = $1 ORDER BY position");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(quote).fetch_all(conn).await?)
}

async fn editable_quote(conn: &mut PgConnection, id: QuoteId) -> Result<Quote> {
    let q: Quote = table::get(conn, &QUOTES, id.0, true).await?;
    if !editable(q.status) {
        return Err(Error::state(format!("the quote is {}; only draft and in-review quotes change lines", q.status)));
    }
    Ok(q)
}

/// Appends a line to a draft or in-review quote and recomputes its totals.
pub async fn add_quote_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    quote: QuoteId,
    item: &NewQuoteItem,
) -> Result<(QuoteItem, Quote)> {
    let q = editable_quote(conn, quote).await?;
    let next: i32 =
        sqlx::query_scalar("SELECT coalesce(max(position) + 1, 0)::int FROM quote_items WHERE quote_id = $1")
            .bind(quote)
            .fetch_one(&mut *conn)
            .await?;
    let position = usize::try_from(next).unwrap_or_default();
    let added = insert_item(conn, tenant, quote, q.price_book_id, position, item).await?;
    Ok((added, recompute_quote(conn, quote).await?))
}

/// Removes a line from a draft or in-review quote and recomputes its totals.
pub async fn remove_quote_item(conn: &mut PgConnection, quote: QuoteId, item: QuoteItemId) -> Result<Quote> {
    editable_quote(conn, quote).await?;
    let done = sqlx::query("DELETE FROM quote_items WHERE id = $1 AND quote_id = $2")
        .bind(item)
        .bind(quote)
        .execute(&mut *conn)
        .await?;
    found((done.rows_affected() == 1).then_some(()), "quote item")?;
    recompute_quote(conn, quote).await
}

// ---------------------------------------------------------------------------------------------------
// Subscriptions

/// A recurring subscription of an account.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub product_id: Option<ProductId>,
    pub opportunity_id: Option<OpportunityId>,
    pub plan_name: String,
    pub status: SubscriptionStatus,
    pub billing_period: BillingPeriod,
    pub seats: i32,
    /// Seats active in the last 30 days, as the product reports.
    pub active_seats_30d: Option<i32>,
    /// Monthly recurring revenue, in `currency`.
    pub mrr: Decimal,
    pub currency: String,
    pub started_at: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub account_id: AccountId,
    pub product_id: Option<ProductId>,
    pub opportunity_id: Option<OpportunityId>,
    pub plan_name: String,
    /// `trialing` or `active` (default).
    pub status: Option<SubscriptionStatus>,
    pub billing_period: Option<BillingPeriod>,
    #[schema(minimum = 1)]
    pub seats: Option<i32>,
    pub mrr: Decimal,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub started_at: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
}

/// Changes to a subscription. Setting `status` to `cancelled` records the cancellation time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub plan_name: Option<String>,
    pub status: Option<SubscriptionStatus>,
    pub billing_period: Option<BillingPeriod>,
    #[schema(minimum = 1)]
    pub seats: Option<i32>,
    #[schema(minimum = 0)]
    pub active_seats_30d: Option<i32>,
    pub mrr: Option<Decimal>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
}

pub const SUBSCRIPTIONS: Table = Table {
    name: "subscriptions",
    entity: "subscription",
    columns: &[
        "id",
        "tenant_id",
        "account_id",
        "product_id",
        "opportunity_id",
        "plan_name",
        "status",
        "billing_period",
        "seats",
        "active_seats_30d",
        "mrr",
        "currency",
        "started_at",
        "current_period_end",
        "cancelled_at",
        "cancel_reason",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[
        eq("account_id", "uuid"),
        eq("product_id", "uuid"),
        eq("status", "text"),
        eq("billing_period", "text"),
        Filter { param: "renews_before", column: col("current_period_end", "timestamptz"), op: Op::Before },
    ],
    sorts: &[
        col("mrr", "numeric"),
        col("current_period_end", "timestamptz"),
        col("started_at", "timestamptz"),
        col("created_at", "timestamptz"),
    ],
};

pub async fn create_subscription(
    conn: &mut PgConnection,
    tenant: TenantId,
    new: &NewSubscription,
) -> Result<Subscription> {
    if new.status == Some(SubscriptionStatus::Cancelled) {
        return Err(Error::invalid("status: a subscription cannot start cancelled"));
    }
    table::insert(conn, &SUBSCRIPTIONS, tenant, SubscriptionId::new().0, new).await
}

/// Applies a patch, keeping `cancelled_at` in step with the status: cancelling records the time
/// (once), any other status clears it.
pub async fn update_subscription(
    conn: &mut PgConnection,
    id: SubscriptionId,
    patch: &SubscriptionPatch,
) -> Result<Subscription> {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        patch: &'a SubscriptionPatch,
        cancelled_at: Option<DateTime<Utc>>,
    }
    let current: Subscription = table::get(conn, &SUBSCRIPTIONS, id.0, true).await?;
    let (cancelled_at, nulls): (_, &[&str]) = match patch.status {
        Some(SubscriptionStatus::Cancelled) => (Some(current.cancelled_at.unwrap_or_else(Utc::now)), &[]),
        Some(_) => (None, &["cancelled_at"]),
        None => (None, &[]),
    };
    table::update_nulling(conn, &SUBSCRIPTIONS, id.0, &Row { patch, cancelled_at }, nulls).await
}

// ---------------------------------------------------------------------------------------------------
// Invoices

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Invoice {
    pub id: InvoiceId,
    pub tenant_id: TenantId,
    pub number: String,
    pub account_id: AccountId,
    pub subscription_id: Option<SubscriptionId>,
    pub status: InvoiceStatus,
    pub currency: String,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub tax_pct: Decimal,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub amount_paid: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoiceItem {
    pub product_id: Option<ProductId>,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
}

/// A new invoice; issued today and due in 30 days unless given.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    pub account_id: AccountId,
    pub subscription_id: Option<SubscriptionId>,
    /// `draft` or `open` (default).
    pub status: Option<InvoiceStatus>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub issued_on: Option<NaiveDate>,
    pub due_on: Option<NaiveDate>,
    pub tax_pct: Option<Decimal>,
    pub items: Vec<NewInvoiceItem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoicePatch {
    pub status: Option<InvoiceStatus>,
    pub due_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InvoiceItem {
    pub id: InvoiceItemId,
    pub invoice_id: InvoiceId,
    pub product_id: Option<ProductId>,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

pub const INVOICES: Table = Table {
    name: "invoices",
    entity: "invoice",
    columns: &[
        "id",
        "tenant_id",
        "number",
        "account_id",
        "subscription_id",
        "status",
        "currency",
        "issued_on",
        "due_on",
        "tax_pct",
        "subtotal",
        "tax_total",
        "total",
        "amount_paid",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[
        eq("account_id", "uuid"),
        eq("subscription_id", "uuid"),
        eq("status", "text"),
        Filter { param: "due_before", column: col("due_on", "date"), op: Op::Before },
        Filter { param: "issued_from", column: col("issued_on", "date"), op: Op::From },
    ],
    sorts: &[
        col("number", "text"),
        col("issued_on", "date"),
        col("due_on", "date"),
        col("total", "numeric"),
        col("created_at", "timestamptz"),
    ],
};

/// Creates an invoice with its items; amounts and totals are computed here.
pub async fn create_invoice(conn: &mut PgConnection, tenant: TenantId, new: &NewInvoice) -> Result<Invoice> {
    if new.items.is_empty() {
        return Err(Error::invalid("items: an invoice needs at least one item"));
    }
    if matches!(new.status, Some(s) if !matches!(s, InvoiceStatus::Draft | InvoiceStatus::Open)) {
        return Err(Error::invalid("status: a new invoice is draft or open"));
    }
    let tax_pct = new.tax_pct.unwrap_or_default();
    let mut priced = Vec::with_capacity(new.items.len());
    for (i, item) in new.items.iter().enumerate() {
        let line = Line { quantity: item.quantity, unit_price: item.unit_price, discount_pct: Decimal::ZERO };
        priced.push(line.amounts().map_err(|e| prefix_field(e, &format!("items[{i}]")))?);
    }
    let t = pricing::totals(&priced, tax_pct)?;
    let issued = new.issued_on.unwrap_or_else(|| Utc::now().date_naive());
    let due = new.due_on.unwrap_or(issued + chrono::Days::new(30));
    if due < issued {
        return Err(Error::invalid("due_on: must not be before issued_on"));
    }
    let number = next_number(conn, &INVOICES, "INV", 7).await?;
    let id = InvoiceId::new();
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, number, account_id, subscription_id, status, currency, issued_on, due_on, \
         tax_pct, subtotal, tax_total, total) VALUES ($1, $2, $3, $4, $5, coalesce($6, 'open'), $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(tenant)
    .bind(id)
    .bind(&number)
    .bind(new.account_id)
    .bind(new.subscription_id)
    .bind(new.status)
    .bind(&new.currency)
    .bind(issued)
    .bind(due)
    .bind(tax_pct)
    .bind(t.subtotal)
    .bind(t.tax_total)
    .bind(t.total)
    .execute(&mut *conn)
    .await?;
    for (item, amounts) in new.items.iter().zip(&priced) {
        sqlx::query(
            "INSERT INTO invoice_items (tenant_id, id, invoice_id, product_id, description, quantity, unit_price, amount) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant)
        .bind(InvoiceItemId::new())
        .bind(id)
        .bind(item.product_id)
        .bind(&item.description)
        .bind(item.quantity)
        .bind(item.unit_price)
        .bind(amounts.gross)
        .execute(&mut *conn)
        .await?;
    }
    table::get(conn, &INVOICES, id.0, false).await
}

pub async fn invoice_items(conn: &mut PgConnection, invoice: InvoiceId) -> Result<Vec<InvoiceItem>> {
    Ok(sqlx::query_as(
        "SELECT id, invoice_id, product_id, description, quantity, unit_price, amount FROM invoice_items \
         WHERE invoice_id = $1 ORDER BY id",
    )
    .bind(invoice)
    .fetch_all(conn)
    .await?)
}
