//! Tenant configuration the sales process runs on: pipeline stages (order, probability, the fields an
//! opportunity needs to enter a stage) and the product catalogue. Admin-maintained, read by everyone.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::table::{Table, col, eq};
use crate::model::{ProductFamily, ProductId, StageId, TenantId};

/// A stage of a sales pipeline.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PipelineStage {
    pub id: StageId,
    pub tenant_id: TenantId,
    pub pipeline: String,
    pub name: String,
    /// Order within the pipeline, from 0.
    pub position: i16,
    /// Win probability of opportunities in this stage, 0..=100.
    pub probability: Decimal,
    pub is_won: bool,
    pub is_lost: bool,
    /// Opportunity fields that must be set before an opportunity may enter this stage.
    pub required_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new stage. A won stage has probability 100, a lost one 0.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPipelineStage {
    /// Defaults to `default`.
    pub pipeline: Option<String>,
    pub name: String,
    #[schema(minimum = 0, maximum = 1000)]
    pub position: i16,
    pub probability: Decimal,
    pub is_won: Option<bool>,
    pub is_lost: Option<bool>,
    pub required_fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineStagePatch {
    pub name: Option<String>,
    #[schema(minimum = 0, maximum = 1000)]
    pub position: Option<i16>,
    pub probability: Option<Decimal>,
    pub required_fields: Option<Vec<String>>,
}

pub const STAGES: Table = Table {
    name: "pipeline_stages",
    entity: "pipeline stage",
    columns: &[
        "id",
        "tenant_id",
        "pipeline",
        "name",
        "position",
        "probability",
        "is_won",
        "is_lost",
        "required_fields",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[eq("pipeline", "text"), eq("is_won", "boolean"), eq("is_lost", "boolean")],
    sorts: &[col("position", "smallint"), col("name", "text"), col("created_at", "timestamptz")],
};

/// A product of the catalogue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Product {
    pub id: ProductId,
    pub tenant_id: TenantId,
    /// Stock-keeping unit, unique in the tenant: upper-case letters, digits and dashes.
    pub sku: String,
    pub name: String,
    pub family: Option<ProductFamily>,
    pub description: Option<String>,
    pub is_recurring: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(pattern = "^[A-Z0-9][A-Z0-9-]{1,40}$")]
    pub sku: String,
    pub name: String,
    pub family: Option<ProductFamily>,
    pub description: Option<String>,
    pub is_recurring: Option<bool>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub family: Option<ProductFamily>,
    pub description: Option<String>,
    pub is_recurring: Option<bool>,
    pub is_active: Option<bool>,
}

pub const PRODUCTS: Table = Table {
    name: "products",
    entity: "product",
    columns: &[
        "id",
        "tenant_id",
        "sku",
        "name",
        "family",
        "description",
        "is_recurring",
        "is_active",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[eq("sku", "text"), eq("family", "text"), eq("is_active", "boolean"), eq("is_recurring", "boolean")],
    sorts: &[col("sku", "text"), col("name", "text"), col("created_at", "timestamptz")],
};
