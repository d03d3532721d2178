//! `POST /v1/assistant/query`: the RAG assistant over the records the caller may read (retrieval
//! filtered by the caller's tenant and read scopes, answer through the configured language model,
//! cited). JSON by default; server-sent events (`delta` events, then one `done` with the cited answer)
//! when the request accepts `text/event-stream`. The language model is configured by the environment
//! for now (`ORBAS_LLM_BASE_URL`, `ORBAS_LLM_MODEL`, `ORBAS_LLM_API_KEY`); without one the answer is
//! extractive.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use orbas_search::assistant::MAX_QUESTION_CHARS;
use orbas_search::{Assistant, AssistantAnswer, AssistantEvent, Visibility};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Authenticated;
use crate::problem::Problem;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query))
}

/// A question for the assistant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantQuery {
    /// The question (1..=2000 characters).
    pub question: String,
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

/// Ask the assistant a question about your records.
#[utoipa::path(post, path = "/v1/assistant/query", tag = "assistant", request_body = AssistantQuery,
    security(("bearer" = [])),
    responses((status = 200, body = AssistantAnswer, description = "the answer (or, with Accept: text/event-stream, \
               `delta` events then a `done` event carrying it)"),
              (status = 401, body = Problem), (status = 422, body = Problem), (status = 502, body = Problem),
              (status = 503, body = Problem, description = "no search index configured"), (status = 504, body = Problem)))]
async fn query(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Json<AssistantQuery>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(q) = body.map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    validate(&q)?;
    let Some(index) = state.search.clone() else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "search index not configured"));
    };
    let assistant = Assistant::new(index);
    let vis = Visibility::for_principal(&auth.principal);
    let llm = state.llm.as_ref();
    if !wants_events(&headers) {
        return Ok(Json(assistant.answer(&q.question, &vis, llm).await.map_err(problem)?).into_response());
    }
    let events = assistant.answer_stream(&q.question, &vis, llm).await.map_err(problem)?;
    let sse = events.map(|e| {
        let event = match e {
            Ok(AssistantEvent::Delta { text }) => {
                Event::default().event("delta").json_data(serde_json::json!({ "text": text }))
            }
            Ok(AssistantEvent::Done(answer)) => Event::default().event("done").json_data(answer),
            Err(e) => {
                let p = problem(e);
                Event::default().event("error").json_data(serde_json::json!({ "status": p.status, "title": p.title }))
            }
        };
        Ok::<_, Infallible>(event.unwrap_or_else(|_| Event::default().event("error").data("encoding failed")))
    });
    Ok(Sse::new(sse).into_response())
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
}
