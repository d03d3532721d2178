//! RFC 9457 problem details: every error the API returns is `application/problem+json`.
//!
//! [`status_for`] is the one place where a domain error kind becomes an HTTP status. Server errors get a
//! generic body; their cause is logged inside the request span, never sent to the client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orbas_oltp::ErrorKind;
use serde::Serialize;

/// One invalid input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer-ish path of the field, e.g. `amount` or `items/2/quantity`.
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
    /// Adds `WWW-Authenticate: Bearer` (401 responses).
    #[serde(skip)]
    pub www_authenticate: bool,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let slug = title.to_lowercase().replace(' ', "-");
        Problem {
            kind: format!("https://orbas.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after_secs: None,
            www_authenticate: false,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
        self
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry = self.retry_after_secs;
        let challenge = self.www_authenticate;
        let mut resp = (status, Json(self)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The one mapping from domain error kinds to HTTP statuses.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<orbas_oltp::Error> for Problem {
    fn from(e: orbas_oltp::Error) -> Self {
        let status = status_for(e.kind());
        if status.is_server_error() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "request failed");
            let mut p = Problem::new(status, "the server could not complete the request");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                p.retry_after_secs = Some(1);
            }
            return p;
        }
        Problem::new(status, e.to_string())
    }
}

impl From<orbas_dashboards::Error> for Problem {
    /// Definitions and queries the caller can fix are 422 with their fields; a query the lake refuses
    /// is 422 too (it is the caller's SQL or KPI); the lake being unreadable is 503.
    fn from(e: orbas_dashboards::Error) -> Self {
        use orbas_dashboards::Error as E;
        use orbas_warehouse::sql::QueryError as Q;
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            E::Invalid(errors) => {
                let mut p = Problem::new(unprocessable, "the definition or query is not valid");
                p.errors = errors.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect();
                p
            }
            E::Yaml(e) => Problem::new(unprocessable, "the YAML does not hold valid definitions")
                .with_field(e.location().map_or("yaml".to_owned(), |l| format!("line {}", l.line())), e.to_string()),
            E::Db(e) => e.into(),
            E::Query(Q::NotAllowed(m)) => {
                Problem::new(unprocessable, format!("only queries are allowed: {m}")).with_field("sql", m)
            }
            E::Query(Q::Invalid(m)) => Problem::new(unprocessable, "the query does not plan").with_field("sql", m),
            E::Query(e @ (Q::Timeout(_) | Q::Memory(_))) => Problem::new(unprocessable, e.to_string()),
            E::Query(Q::Internal(e)) | E::Lake(e) => {
                tracing::error!(error = %e, "reading the lake");
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the lake cannot be read right now");
                p.retry_after_secs = Some(1);
                p
            }
            E::Corrupt(m) => {
                tracing::error!(error = %m, "a stored dashboard or KPI cannot be read");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
            }
            E::Render(e) => {
                tracing::error!(error = %e, "rendering a page");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
            }
            E::Print(e) => {
                tracing::error!(error = %e, "printing a dashboard");
                let mut p =
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the dashboard could not be printed right now");
                p.retry_after_secs = Some(5);
                p
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    /// Malformed JSON is 400; well-formed JSON of the wrong shape (unknown field, wrong type) is 422
    /// with the offending field named.
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let field = field_of(&text);
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the request body does not match the schema")
                    .with_field(field, text)
            }
            JsonRejection::MissingJsonContentType(_) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
            }
            other => Problem::new(other.status(), other.body_text()),
        }
    }
}

/// The field a body-shape error is about. axum reports "Failed to deserialize …: <path>: <message>";
/// for an unknown or missing member the message names it, and the path is its parent.
fn field_of(text: &str) -> String {
    let inner = text.split_once(": ").map_or(text, |(_, rest)| rest);
    let (path, message) = inner.split_once(": ").unwrap_or((".", inner));
    let path = path.trim_start_matches('.');
    let unknown = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|m| m.split_once('`'))
        .map(|(name, _)| name);
    match (path, unknown) {
        ("", Some(name)) => name.to_owned(),
        (p, Some(name)) => format!("{p}.{name}"),
        (p, None) => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_name_their_field() {
        let pre = "Failed to deserialize the JSON body into the target type: ";
        assert_eq!(field_of(&format!("{pre}.: unknown field `bogus`, expected one of `a`, `b`")), "bogus");
        assert_eq!(field_of(&format!("{pre}items[0]: unknown field `x`, expected `y`")), "items[0].x");
        assert_eq!(field_of(&format!("{pre}amount: invalid type: integer `1`, expected a string")), "amount");
        assert_eq!(field_of(&format!("{pre}missing field `name` at line 1 column 2")), "name");
        assert_eq!(field_of(&format!("{pre}.: missing field `name` at line 1 column 2")), "name");
    }

    #[test]
    fn domain_errors_map_to_statuses_and_hide_server_details() {
        let p: Problem = orbas_oltp::Error::NotFound { entity: "account" }.into();
        assert_eq!((p.status, p.detail.as_deref()), (404, Some("account not found")));
        let p: Problem = orbas_oltp::Error::Database(sqlx::Error::Protocol("secret internals".into())).into();
        assert_eq!(p.status, 500);
        assert!(!p.detail.unwrap_or_default().contains("secret"));
        let json = serde_json::to_value(Problem::new(StatusCode::CONFLICT, "x").with_field("email", "taken"))
            .unwrap_or_default();
        assert_eq!(json["type"], "https://orbas.dev/problems/conflict");
        assert_eq!(json["errors"][0]["field"], "email");
    }
}
