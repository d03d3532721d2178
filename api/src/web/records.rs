//! Record pages: an account's and an opportunity's fields, history, latest model scores with their
//! factors, and the caller's open recommendations about the record. The read checks are the JSON
//! API's: a record outside the caller's read scope (or another tenant's) is the 404 page; the scores
//! section needs the `predictions` read permission and the recommendations section the
//! `recommendations` one — without them the section is left out, as the API would answer 403.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use orbas_dashboards::web::{Nav, RecView, RecordPage, ScoreView, TimelineRow, account_fields, opportunity_fields};
use orbas_oltp::auth::Principal;
use orbas_oltp::db::TenantTx;
use orbas_oltp::model::{Action, EntityType, OpportunityId, StageId};
use orbas_oltp::repo::accounts::Account;
use orbas_oltp::repo::catalog::{self, PipelineStage};
use orbas_oltp::repo::workflows::{self, Subject};
use orbas_oltp::repo::{intelligence, opportunities, recommendations, table};
use uuid::Uuid;

use super::session::UiUser;
use super::{HtmlError, PathId, page};
use crate::resource::parent;
use crate::routes::{accounts::Accounts, opportunities::Opportunities};
use crate::state::AppState;

/// How many timeline events a record page shows.
const TIMELINE_SIZE: u32 = 25;

/// The scores and recommendations sections, each `None` when the caller's role may not read them.
type Sections = (Option<Vec<ScoreView>>, Option<Vec<RecView>>);

async fn sections(tx: &mut TenantTx, p: &Principal, kind: EntityType, id: Uuid) -> Result<Sections, HtmlError> {
    let scores = if p.scope_for("predictions", Action::Read).is_some() {
        let s = intelligence::latest_for(tx.conn(), kind, id).await?;
        Some(s.iter().map(ScoreView::from).collect())
    } else {
        None
    };
    let recs = if p.scope_for("recommendations", Action::Read).is_some() {
        let mine = recommendations::for_user(tx.conn(), p.user, Utc::now(), 200).await?;
        Some(mine.iter().filter(|r| r.entity_type == kind && r.entity_id == id).map(RecView::from).collect())
    } else {
        None
    };
    Ok((scores, recs))
}

/// What a record page shows besides its sections.
struct Record {
    kind: &'static str,
    name: String,
    fields: Vec<orbas_dashboards::web::Field>,
    timeline_title: &'static str,
    timeline: Vec<TimelineRow>,
}

fn record_page(user: &UiUser, r: Record, (scores, recommendations): Sections) -> Result<Response, HtmlError> {
    let mut layout = user.layout(r.name.clone(), Nav::None);
    layout.charts = scores.as_ref().is_some_and(|s| !s.is_empty());
    page(&RecordPage {
        layout,
        kind: r.kind,
        name: r.name,
        fields: r.fields,
        timeline_title: r.timeline_title,
        timeline: r.timeline,
        scores,
        recommendations,
    })
}

/// `GET /ui/accounts/{id}`.
pub(super) async fn account(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
) -> Result<Response, HtmlError> {
    let p = &user.auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let a: Account = parent::<Accounts>(tx.conn(), p, id, Action::Read).await?;
    let events = workflows::timeline(tx.conn(), Subject::Account(a.id), None, TIMELINE_SIZE).await?;
    let sections = sections(&mut tx, p, EntityType::Account, id).await?;
    tx.commit().await?;
    let fields = account_fields(&a);
    let timeline = events.iter().map(TimelineRow::from).collect();
    let record = Record { kind: "Account", name: a.name, fields, timeline_title: "Timeline", timeline };
    record_page(&user, record, sections)
}

/// `GET /ui/opportunities/{id}`.
pub(super) async fn opportunity(
    State(state): State<AppState>,
    user: UiUser,
    PathId(id): PathId,
) -> Result<Response, HtmlError> {
    let p = &user.auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let o = parent::<Opportunities>(tx.conn(), p, id, Action::Read).await?;
    let history = opportunities::stage_history(tx.conn(), OpportunityId(id)).await?;
    let mut stages: HashMap<StageId, String> = HashMap::new();
    for s in std::iter::once(o.stage_id).chain(history.iter().map(|h| h.to_stage_id)) {
        if let std::collections::hash_map::Entry::Vacant(slot) = stages.entry(s) {
            let stage: PipelineStage = table::get(tx.conn(), &catalog::STAGES, s.0, false).await?;
            slot.insert(stage.name);
        }
    }
    // The account's name only when the caller may open it (the API would answer 404 for it).
    let account: Account = table::get(tx.conn(), &orbas_oltp::repo::accounts::TABLE, o.account_id.0, false).await?;
    let account_name = p.may("accounts", Action::Read, account.owner_id).then_some(account.name);
    let sections = sections(&mut tx, p, EntityType::Opportunity, id).await?;
    tx.commit().await?;
    let stage_name = |s: &StageId| stages.get(s).cloned().unwrap_or_default();
    let fields = opportunity_fields(&o, account_name.as_deref(), &stage_name(&o.stage_id));
    let mut timeline: Vec<TimelineRow> =
        history.iter().map(|h| TimelineRow::stage_change(h, &stage_name(&h.to_stage_id), &o.currency)).collect();
    timeline.reverse(); // newest first, as every timeline
    let record = Record { kind: "Opportunity", name: o.name, fields, timeline_title: "Stage history", timeline };
    record_page(&user, record, sections)
}
