//! `/v1/pipeline-stages` and `/v1/products`: the configuration selling runs on. Admins maintain it,
//! everyone who sells reads it.

use orbas_oltp::model::ProductFamily;
use orbas_oltp::repo::catalog::{
    self, NewPipelineStage, NewProduct, PipelineStage, PipelineStagePatch, Product, ProductPatch,
};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    stages::router().merge(products::router())
}

mod stages {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/pipeline-stages`.
        StageQuery { pipeline: String, is_won: bool, is_lost: bool }
    );

    crate::resource!(Stages {
        name: "pipeline_stages",
        table: catalog::STAGES,
        record: PipelineStage,
        new: NewPipelineStage,
        patch: PipelineStagePatch,
        query: StageQuery,
        owner: none,
    });

    crate::crud_handlers!(
        resource = Stages,
        tag = "pipeline stages",
        collection = "/v1/pipeline-stages",
        item = "/v1/pipeline-stages/{id}",
        record = PipelineStage,
        new = NewPipelineStage,
        patch = PipelineStagePatch,
        filter = StageQuery
    );
}

mod products {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/products`.
        ProductQuery { sku: String, family: ProductFamily, is_active: bool, is_recurring: bool }
    );

    crate::resource!(Products {
        name: "products",
        table: catalog::PRODUCTS,
        record: Product,
        new: NewProduct,
        patch: ProductPatch,
        query: ProductQuery,
        owner: none,
    });

    crate::crud_handlers!(
        resource = Products,
        tag = "products",
        collection = "/v1/products",
        item = "/v1/products/{id}",
        record = Product,
        new = NewProduct,
        patch = ProductPatch,
        filter = ProductQuery
    );
}
