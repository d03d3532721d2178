//! `POST /v1/assistant/query`: the RAG assistant over the records the caller may read (retrieval
//! filtered by the caller's tenant and read scopes, answer through the configured language model,
//! cited). JSON by default; server-sent events (`delta` events, then one `done` with the cited answer)
//! when the request accepts `text/event-stream`. The language model is the tenant's (`/v1/admin/assistant`,
//! set by an admin; the key sealed at rest), else the server's default (`ORBAS_LLM_*`); without one the
//! answer is extractive.
//!
//! Every question is logged to `ai_queries` (answer, mode, model, citations, latency, tokens, or the
//! failure) under the id the reply carries; the asker rates it with `POST /v1/assistant/queries/{id}/feedback`
//! and `GET /v1/assistant/queries` lists questions within the caller's `ai_queries` read scope. A streamed
//! answer is logged when it completes (a client that hangs up mid-stream leaves no row).

use std::convert::Infallible;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use orbas_models::LlmClient;
use orbas_oltp::model::{Action, AiQueryId, Scope, UserId};
use orbas_oltp::repo::assistant::{self as repo, AiQuery, KeyChange, LlmSettingsUpdate, NewAiQuery, QueryFeedback};
use orbas_oltp::repo::audit;
use orbas_search::assistant::{AnswerMode, MAX_QUESTION_CHARS};
use orbas_search::{Assistant, AssistantAnswer, AssistantEvent, Visibility};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::WriteContext;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query)).routes(routes!(list_queries)).routes(routes!(feedback))
}

/// `/v1/admin/assistant`: the tenant's language-model settings.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings, delete_settings))
}

const QUERIES: &str = "ai_queries";
const SETTINGS: &str = "ai_settings";

/// A question for the assistant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantQuery {
    /// The question (1..=2000 characters).
    pub question: String,
}

/// An answer and the id it is logged under (for feedback).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssistantReply {
    pub query_id: AiQueryId,
    #[serde(flatten)]
    pub answer: AssistantAnswer,
}

fn validate(q: &AssistantQuery) -> Result<(), Problem> {
    let n = q.question.trim().chars().count();
    if n == 0 || n > MAX_QUESTION_CHARS {
        let detail = format!("must be 1 to {MAX_QUESTION_CHARS} characters");
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid question").with_field("question", detail));
    }
    Ok(())
}

/// The one place assistant errors become statuses: the caller's (422), the model's (502/504), ours (500).
fn problem(e: orbas_search::Error) -> Problem {
    use orbas_models::Error as M;
    match e {
        e if e.is_client_error() => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        orbas_search::Error::Llm(M::LlmTimeout { .. }) => {
            Problem::new(StatusCode::GATEWAY_TIMEOUT, "the language model did not answer in time")
        }
        orbas_search::Error::Llm(m) => {
            tracing::warn!(error = ?m, "assistant language model failed");
            Problem::new(StatusCode::BAD_GATEWAY, "the language model failed; try again later")
        }
        e => {
            tracing::error!(error = ?e, "assistant failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the assistant failed")
        }
    }
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/event-stream")))
}

/// What the log row of one question needs besides its outcome.
#[derive(Clone)]
struct Asked {
    state: AppState,
    tenant: orbas_oltp::model::TenantId,
    user: UserId,
    id: AiQueryId,
    question: String,
    model: Option<String>,
    streamed: bool,
    started: Instant,
}

impl Asked {
    /// Logs the question with its answer or failure. A failure to log is reported, not passed on:
    /// the answer matters more to the caller than its log row.
    async fn log(&self, outcome: Result<&AssistantAnswer, &Problem>) {
        let (result, citations, tokens, model) = match outcome {
            Ok(a) => {
                let citations = serde_json::to_value(&a.citations).unwrap_or_default();
                let (mode, model) = match a.mode {
                    AnswerMode::Llm => ("llm", self.model.clone()),
                    AnswerMode::Extractive => ("extractive", None),
                };
                (Ok((a.answer.clone(), mode.to_owned())), citations, a.tokens, model)
            }
            // The model that failed, if one was asked.
            Err(p) => (
                Err(p.detail.clone().unwrap_or_else(|| p.title.clone())),
                serde_json::json!([]),
                None,
                self.model.clone(),
            ),
        };
        let row = NewAiQuery {
            id: self.id,
            user_id: self.user,
            query_text: self.question.clone(),
            outcome: result,
            model,
            citations,
            streamed: self.streamed,
            latency_ms: i32::try_from(self.started.elapsed().as_millis()).unwrap_or(i32::MAX),
            prompt_tokens: tokens.map(|t| i32::try_from(t.prompt).unwrap_or(i32::MAX)),
            completion_tokens: tokens.map(|t| i32::try_from(t.completion).unwrap_or(i32::MAX)),
        };
        let logged = async {
            let mut tx = self.state.db.begin(self.tenant).await?;
            repo::log_query(tx.conn(), self.tenant, &row).await?;
            tx.commit().await
        };
        if let Err(e) = logged.await {
            tracing::error!(error = %e, query_id = %self.id, "the assistant question could not be logged");
        }
    }
}

/// Ask the assistant a question about your records.
#[utoipa::path(post, path = "/v1/assistant/query", tag = "assistant", request_body = AssistantQuery,
    security(("bearer" = [])),
    responses((status = 200, body = AssistantReply, description = "the answer (or, with Accept: text/event-stream, \
               `delta` events then a `done` event carrying it)"),
              (status = 401, body = Problem), (status = 422, body = Problem), (status = 502, body = Problem),
              (status = 503, body = Problem, description = "no search index, or the tenant's model is not usable"),
              (status = 504, body = Problem)))]
async fn query(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Json<AssistantQuery>, JsonRejection>,
) -> Result<Response, Problem> {
    let started = Instant::now();
    let Json(q) = body.map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    validate(&q)?;
    let index = state.search.get().map_err(|why| Problem::new(StatusCode::SERVICE_UNAVAILABLE, why))?;
    let p = &auth.principal;
    let llm: Option<LlmClient> = {
        let mut tx = state.db.begin(p.tenant).await?;
        let llm = state.llms.for_tenant(tx.conn(), p.tenant).await?;
        tx.commit().await?;
        llm
    };
    let asked = Asked {
        state: state.clone(),
        tenant: p.tenant,
        user: p.user,
        id: AiQueryId::new(),
        question: q.question.trim().to_owned(),
        model: llm.as_ref().map(|c| c.config().model.clone()),
        streamed: wants_events(&headers),
        started,
    };
    let assistant = Assistant::new(index);
    let vis = Visibility::for_principal(p);
    if !asked.streamed {
        let answer = assistant.answer(&q.question, &vis, llm.as_ref()).await.map_err(problem);
        asked.log(answer.as_ref()).await;
        return Ok(Json(AssistantReply { query_id: asked.id, answer: answer? }).into_response());
    }
    let events = match assistant.answer_stream(&q.question, &vis, llm.as_ref()).await.map_err(problem) {
        Ok(events) => events,
        Err(p) => {
            asked.log(Err(&p)).await;
            return Err(p);
        }
    };
    let sse = events.then(move |e| {
        let asked = asked.clone();
        async move {
            let event = match e {
                Ok(AssistantEvent::Delta { text }) => {
                    Event::default().event("delta").json_data(serde_json::json!({ "text": text }))
                }
                Ok(AssistantEvent::Done(answer)) => {
                    asked.log(Ok(&answer)).await;
                    Event::default().event("done").json_data(AssistantReply { query_id: asked.id, answer })
                }
                Err(e) => {
                    let p = problem(e);
                    asked.log(Err(&p)).await;
                    Event::default()
                        .event("error")
                        .json_data(serde_json::json!({ "status": p.status, "title": p.title, "query_id": asked.id }))
                }
            };
            Ok::<_, Infallible>(event.unwrap_or_else(|_| Event::default().event("error").data("encoding failed")))
        }
    });
    Ok(Sse::new(sse).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueriesQuery {
    /// How many, newest first (1..=200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only questions logged before this one (the last id of the previous page).
    pub before: Option<AiQueryId>,
    /// Only this user's questions (within your read scope).
    pub user_id: Option<UserId>,
}

/// Questions asked of the assistant, newest first: your own, your team's (managers) or all (analysts,
/// admins).
#[utoipa::path(get, path = "/v1/assistant/queries", tag = "assistant", params(QueriesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<AiQuery>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list_queries(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<QueriesQuery>, QueryRejection>,
) -> Result<Json<Vec<AiQuery>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let p = &auth.principal;
    let mut reach: Option<Vec<UserId>> = match p.scope_for(QUERIES, Action::Read) {
        None => return Err(Problem::new(StatusCode::FORBIDDEN, "your role may not read assistant questions")),
        Some(Scope::All) => None,
        Some(Scope::Team) => Some(std::iter::once(p.user).chain(p.reports.iter().copied()).collect()),
        Some(Scope::Own) => Some(vec![p.user]),
    };
    if let Some(user) = q.user_id {
        // Someone outside the caller's reach simply has no questions to show.
        reach = Some(match reach {
            Some(users) => users.into_iter().filter(|u| *u == user).collect(),
            None => vec![user],
        });
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let rows = repo::list_queries(tx.conn(), reach.as_deref(), q.before, q.limit.unwrap_or(50)).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Rate an answer you got (up or down), optionally with what it should have said.
#[utoipa::path(post, path = "/v1/assistant/queries/{id}/feedback", tag = "assistant", request_body = QueryFeedback,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AiQuery), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn feedback(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<AiQueryId>,
    Body(fb): Body<QueryFeedback>,
) -> Result<Json<AiQuery>, Problem> {
    let p = &auth.principal;
    if !p.may(QUERIES, Action::Update, Some(p.user)) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "your role may not rate assistant answers"));
    }
    if fb.correction.as_ref().is_some_and(|c| c.chars().count() > repo::MAX_CORRECTION_CHARS) {
        let detail = format!("at most {} characters", repo::MAX_CORRECTION_CHARS);
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid feedback").with_field("correction", detail));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let row = repo::rate_query(tx.conn(), id, p.user, &fb).await?;
    let changes = serde_json::json!({ "rating": { "after": row.rating }, "corrected": row.correction.is_some() });
    audit::record(tx.conn(), p.tenant, &ctx.actor(&auth), "feedback", QUERIES, id.0, &changes).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// The tenant's language-model settings as an admin sees them (never the key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssistantSettings {
    /// Whose model answers: `tenant` (these settings), `server_default` or `none` (extractive answers).
    pub source: &'static str,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub timeout_seconds: Option<i32>,
    /// Whether an API key is stored (sealed at rest).
    pub api_key_set: bool,
    /// The stored key's last four characters (none for keys shorter than 12).
    pub api_key_hint: Option<String>,
    pub updated_by: Option<UserId>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl AssistantSettings {
    fn of(s: Option<repo::LlmSettings>, default_model: Option<&str>) -> Self {
        match s {
            Some(s) => Self {
                source: "tenant",
                base_url: Some(s.llm_base_url),
                model: Some(s.llm_model),
                timeout_seconds: Some(s.llm_timeout_seconds),
                api_key_set: s.llm_api_key_sealed.is_some(),
                api_key_hint: s.llm_api_key_hint.filter(|h| !h.is_empty()),
                updated_by: s.updated_by,
                updated_at: Some(s.updated_at),
            },
            None => Self {
                source: if default_model.is_some() { "server_default" } else { "none" },
                base_url: None,
                model: default_model.map(str::to_owned),
                timeout_seconds: None,
                api_key_set: false,
                api_key_hint: None,
                updated_by: None,
                updated_at: None,
            },
        }
    }
}

/// `null` and absent differ: `"api_key": null` clears the key, no `api_key` keeps it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The tenant's language model: an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantSettingsInput {
    /// The API root, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended); http or https,
    /// no credentials, query or fragment.
    pub base_url: String,
    /// The model name (1..=200 characters).
    pub model: String,
    /// How long an answer may take, 1..=600 seconds (default 60).
    #[schema(minimum = 1, maximum = 600)]
    pub timeout_seconds: Option<i64>,
    /// The API key: a string sets it (stored sealed, never shown again), `null` removes it, absent keeps
    /// the stored one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<String>>,
}

fn validate_settings(input: &AssistantSettingsInput) -> Result<(String, i32), Problem> {
    let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid assistant settings");
    let base = input.base_url.trim();
    match url::Url::parse(base) {
        Err(_) => p = p.with_field("base_url", "must be an absolute http or https URL"),
        Ok(u) if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() => {
            p = p.with_field("base_url", "must be an absolute http or https URL")
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            p = p.with_field("base_url", "must not carry credentials; set api_key")
        }
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            p = p.with_field("base_url", "must not have a query or fragment")
        }
        Ok(_) if base.len() > 2000 => p = p.with_field("base_url", "at most 2000 characters"),
        Ok(_) => {}
    }
    let model = input.model.trim();
    if model.is_empty() || model.chars().count() > 200 || model.chars().any(char::is_control) {
        p = p.with_field("model", "must be 1 to 200 printable characters");
    }
    let timeout = input.timeout_seconds.unwrap_or(60);
    if !(1..=600).contains(&timeout) {
        p = p.with_field("timeout_seconds", "must be 1 to 600");
    }
    if let Some(Some(key)) = &input.api_key
        && (key.is_empty() || key.len() > 4096 || key.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        p = p.with_field("api_key", "must be 1 to 4096 characters without spaces");
    }
    if !p.errors.is_empty() {
        return Err(p);
    }
    Ok((base.trim_end_matches('/').to_owned(), i32::try_from(timeout).unwrap_or(60)))
}

fn may_manage(auth: &Authenticated, action: Action) -> Result<(), Problem> {
    match auth.principal.scope_for(SETTINGS, action) {
        Some(_) => Ok(()),
        None => Err(Problem::new(StatusCode::FORBIDDEN, "only an admin manages the assistant's settings")),
    }
}

/// The tenant's assistant settings (never the API key).
#[utoipa::path(get, path = "/v1/admin/assistant", tag = "assistant", security(("bearer" = [])),
    responses((status = 200, body = AssistantSettings), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn get_settings(State(state): State<AppState>, auth: Authenticated) -> Result<Json<AssistantSettings>, Problem> {
    may_manage(&auth, Action::Read)?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let s = repo::llm_settings(tx.conn()).await?;
    tx.commit().await?;
    Ok(Json(AssistantSettings::of(s, state.llms.default_model())))
}

/// Set the tenant's language model (and API key, sealed at rest).
#[utoipa::path(put, path = "/v1/admin/assistant", tag = "assistant", request_body = AssistantSettingsInput,
    security(("bearer" = [])),
    responses((status = 200, body = AssistantSettings), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem),
              (status = 503, body = Problem, description = "the server has no secrets key to seal an API key with")))]
async fn put_settings(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(input): Body<AssistantSettingsInput>,
) -> Result<Json<AssistantSettings>, Problem> {
    may_manage(&auth, Action::Update)?;
    let (base_url, timeout_seconds) = validate_settings(&input)?;
    let p = &auth.principal;
    let api_key = match input.api_key {
        None => KeyChange::Keep,
        Some(None) => KeyChange::Clear,
        Some(Some(key)) => {
            let Some(secrets) = state.llms.secrets() else {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this server cannot store API keys: it has no secrets key (ORBAS_SECRETS_KEY)",
                ));
            };
            KeyChange::seal(secrets, p.tenant, &SecretString::from(key))?
        }
    };
    let key_change = match &api_key {
        KeyChange::Keep => "kept",
        KeyChange::Clear => "cleared",
        KeyChange::Set { .. } => "set",
    };
    let update = LlmSettingsUpdate { base_url, model: input.model.trim().to_owned(), timeout_seconds, api_key };
    let mut tx = state.db.begin(p.tenant).await?;
    let saved = repo::put_llm_settings(tx.conn(), p.tenant, p.user, &update).await?;
    let changes = serde_json::json!({
        "base_url": { "after": saved.llm_base_url }, "model": { "after": saved.llm_model },
        "timeout_seconds": { "after": saved.llm_timeout_seconds }, "api_key": key_change,
    });
    audit::record(tx.conn(), p.tenant, &ctx.actor(&auth), "update", SETTINGS, p.tenant.0, &changes).await?;
    tx.commit().await?;
    Ok(Json(AssistantSettings::of(Some(saved), state.llms.default_model())))
}

/// Remove the tenant's assistant settings: the server's default model (if any) answers again.
#[utoipa::path(delete, path = "/v1/admin/assistant", tag = "assistant", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn delete_settings(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
) -> Result<StatusCode, Problem> {
    may_manage(&auth, Action::Delete)?;
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    if !repo::delete_llm_settings(tx.conn()).await? {
        return Err(Problem::new(StatusCode::NOT_FOUND, "the assistant has no settings of this tenant"));
    }
    let changes = serde_json::json!({ "deleted": true });
    audit::record(tx.conn(), p.tenant, &ctx.actor(&auth), "delete", SETTINGS, p.tenant.0, &changes).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_validated_and_errors_mapped() {
        assert!(validate(&AssistantQuery { question: "refund policy?".into() }).is_ok());
        for bad in ["   ".to_owned(), "a".repeat(MAX_QUESTION_CHARS + 1)] {
            let p = validate(&AssistantQuery { question: bad }).expect_err("invalid");
            assert_eq!(p.status, 422);
            assert_eq!(p.errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["question"]);
        }
        let timeout = orbas_models::Error::LlmTimeout { after: std::time::Duration::from_secs(1) };
        assert_eq!(problem(orbas_search::Error::Llm(timeout)).status, 504);
        assert_eq!(problem(orbas_search::Error::Llm(orbas_models::Error::LlmAuth { status: 401 })).status, 502);
        assert_eq!(problem(orbas_search::Error::Invalid("q".into())).status, 422);
        let mut h = HeaderMap::new();
        assert!(!wants_events(&h));
        h.insert(header::ACCEPT, "application/json, text/event-stream".parse().expect("header"));
        assert!(wants_events(&h));
    }

    fn input(json: serde_json::Value) -> AssistantSettingsInput {
        serde_json::from_value(json).expect("input")
    }

    #[test]
    fn settings_are_validated_field_by_field() {
        let ok = input(serde_json::json!({ "base_url": "https://llm.example.com/v1/", "model": "gpt-4o-mini" }));
        assert_eq!(validate_settings(&ok).expect("valid"), ("https://llm.example.com/v1".to_owned(), 60));
        assert!(ok.api_key.is_none(), "absent key must mean keep");
        let clear = input(serde_json::json!({ "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": null }));
        assert!(matches!(clear.api_key, Some(None)), "null key must mean clear");
        let set = input(serde_json::json!({ "base_url": "http://127.0.0.1:9", "model": "m", "api_key": "sk-1" }));
        assert_eq!(set.api_key, Some(Some("sk-1".to_owned())));

        let fields = |j: serde_json::Value| -> Vec<String> {
            validate_settings(&input(j)).expect_err("invalid").errors.into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(serde_json::json!({ "base_url": "ftp://x/v1", "model": "m" })), ["base_url"]);
        assert_eq!(fields(serde_json::json!({ "base_url": "not a url", "model": "m" })), ["base_url"]);
        assert_eq!(fields(serde_json::json!({ "base_url": "https://u:p@x/v1", "model": "m" })), ["base_url"]);
        assert_eq!(fields(serde_json::json!({ "base_url": "https://x/v1?k=1", "model": "m" })), ["base_url"]);
        assert_eq!(
            fields(
                serde_json::json!({ "base_url": "https://x", "model": " ", "timeout_seconds": 0, "api_key": "a b" })
            ),
            ["model", "timeout_seconds", "api_key"]
        );
    }
}
