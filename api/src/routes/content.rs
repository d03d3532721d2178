//! `/v1/campaigns` and `/v1/knowledge-articles`: marketing campaigns, and the knowledge base
//! (publishing an article records when).

use chrono::NaiveDate;
use orbas_oltp::model::{ArticleId, ArticleStatus, CampaignKind, CampaignStatus, UserId};
use orbas_oltp::repo::content::{self, Article, ArticlePatch, Campaign, CampaignPatch, NewArticle, NewCampaign};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    campaigns::router().merge(articles::router())
}

mod campaigns {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/campaigns`.
        CampaignQuery {
            owner_id: UserId,
            kind: CampaignKind,
            status: CampaignStatus,
            /// Only campaigns starting on or after this date.
            starts_from: NaiveDate,
        }
    );

    crate::resource!(Campaigns {
        name: "campaigns",
        table: content::CAMPAIGNS,
        record: Campaign,
        new: NewCampaign,
        patch: CampaignPatch,
        query: CampaignQuery,
        owner: owner_id,
    });

    crate::crud_handlers!(
        resource = Campaigns,
        tag = "campaigns",
        collection = "/v1/campaigns",
        item = "/v1/campaigns/{id}",
        record = Campaign,
        new = NewCampaign,
        patch = CampaignPatch,
        filter = CampaignQuery
    );
}

mod articles {
    use super::*;

    crate::list_query!(
        /// Filters of `GET /v1/knowledge-articles`.
        ArticleQuery { status: ArticleStatus, language: String, category: String, author_id: UserId }
    );

    crate::resource!(Articles {
        name: "knowledge_articles",
        table: content::ARTICLES,
        record: Article,
        new: NewArticle,
        patch: ArticlePatch,
        query: ArticleQuery,
        owner: author_id,
        create: |c, p, n| content::create_article(c, p.tenant, n),
        update: |c, _p, id, patch| content::update_article(c, ArticleId(id), patch),
    });

    crate::crud_handlers!(
        resource = Articles,
        tag = "knowledge articles",
        collection = "/v1/knowledge-articles",
        item = "/v1/knowledge-articles/{id}",
        record = Article,
        new = NewArticle,
        patch = ArticlePatch,
        filter = ArticleQuery
    );
}
