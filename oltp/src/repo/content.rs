//! Marketing and service content: campaigns (leads and opportunities point at them) and the
//! knowledge base agents answer tickets from (and the search index later embeds).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::table::{self, Filter, Op, Table, col, eq};
use crate::Result;
use crate::model::{ArticleId, ArticleStatus, CampaignId, CampaignKind, CampaignStatus, TenantId, UserId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Campaign {
    pub id: CampaignId,
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: CampaignKind,
    pub status: CampaignStatus,
    pub owner_id: Option<UserId>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    pub budget: Option<Decimal>,
    pub actual_cost: Option<Decimal>,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    pub kind: CampaignKind,
    pub status: Option<CampaignStatus>,
    pub owner_id: Option<UserId>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    #[schema(minimum = 0)]
    pub budget: Option<Decimal>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub status: Option<CampaignStatus>,
    pub owner_id: Option<UserId>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    #[schema(minimum = 0)]
    pub budget: Option<Decimal>,
    #[schema(minimum = 0)]
    pub actual_cost: Option<Decimal>,
}

pub const CAMPAIGNS: Table = Table {
    name: "campaigns",
    entity: "campaign",
    columns: &[
        "id",
        "tenant_id",
        "name",
        "kind",
        "status",
        "owner_id",
        "starts_on",
        "ends_on",
        "budget",
        "actual_cost",
        "currency",
        "created_at",
        "updated_at",
    ],
    owner: Some("owner_id"),
    filters: &[
        eq("owner_id", "uuid"),
        eq("kind", "text"),
        eq("status", "text"),
        Filter { param: "starts_from", column: col("starts_on", "date"), op: Op::From },
    ],
    sorts: &[col("name", "text"), col("created_at", "timestamptz")],
};

/// An article of the knowledge base.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Article {
    pub id: ArticleId,
    pub tenant_id: TenantId,
    pub title: String,
    /// URL slug, unique per language.
    pub slug: String,
    pub body: String,
    pub category: Option<String>,
    pub language: String,
    pub status: ArticleStatus,
    pub author_id: Option<UserId>,
    /// Set when the article is first published.
    pub published_at: Option<DateTime<Utc>>,
    pub view_count: i32,
    pub helpful_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new article; the author defaults to the caller.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArticle {
    pub title: String,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub slug: String,
    pub body: String,
    pub category: Option<String>,
    /// `en` (default), `de`, `pt-BR`…
    #[schema(pattern = "^[a-z]{2}(-[A-Z]{2})?$")]
    pub language: Option<String>,
    pub status: Option<ArticleStatus>,
    pub author_id: Option<UserId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticlePatch {
    pub title: Option<String>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]*$")]
    pub slug: Option<String>,
    pub body: Option<String>,
    pub category: Option<String>,
    pub status: Option<ArticleStatus>,
    pub author_id: Option<UserId>,
}

pub const ARTICLES: Table = Table {
    name: "knowledge_articles",
    entity: "knowledge article",
    columns: &[
        "id",
        "tenant_id",
        "title",
        "slug",
        "body",
        "category",
        "language",
        "status",
        "author_id",
        "published_at",
        "view_count",
        "helpful_count",
        "created_at",
        "updated_at",
    ],
    owner: Some("author_id"),
    filters: &[eq("status", "text"), eq("language", "text"), eq("category", "text"), eq("author_id", "uuid")],
    sorts: &[col("title", "text"), col("view_count", "integer"), col("created_at", "timestamptz")],
};

#[derive(Serialize)]
struct Publishing<'a, B> {
    #[serde(flatten)]
    body: &'a B,
    published_at: Option<DateTime<Utc>>,
}

/// Creates an article; publishing it records the time.
pub async fn create_article(conn: &mut PgConnection, tenant: TenantId, new: &NewArticle) -> Result<Article> {
    let published_at = (new.status == Some(ArticleStatus::Published)).then(Utc::now);
    table::insert(conn, &ARTICLES, tenant, ArticleId::new().0, &Publishing { body: new, published_at }).await
}

/// Applies a patch; the first publication records the time.
pub async fn update_article(conn: &mut PgConnection, id: ArticleId, patch: &ArticlePatch) -> Result<Article> {
    let current: Article = table::get(conn, &ARTICLES, id.0, true).await?;
    let published_at =
        (patch.status == Some(ArticleStatus::Published) && current.published_at.is_none()).then(Utc::now);
    table::update(conn, &ARTICLES, id.0, &Publishing { body: patch, published_at }).await
}
