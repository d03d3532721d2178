//! [`LlmClient`] against a loopback OpenAI-compatible server (axum on a random port) scripted per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;

use super::*;

/// Answers request number `n` (from 0) with `reply(n, auth header, body)`.
type Reply = Arc<dyn Fn(u32, Option<String>, serde_json::Value) -> Response + Send + Sync>;

struct Server {
    base_url: String,
    calls: Arc<AtomicU32>,
}

async fn serve(reply: Reply) -> Server {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, body: axum::Json<serde_json::Value>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let reply = reply.clone();
            async move { reply(n, auth, body.0) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { base_url: format!("http://{addr}/v1"), calls }
}

fn client(s: &Server) -> LlmClient {
    let mut c = LlmConfig::new(&s.base_url, "test-model", Some(SecretString::from("sk-loopback")));
    c.timeout = Duration::from_secs(5);
    c.max_retries = 2;
    c.initial_backoff = Duration::from_millis(10);
    c.max_retry_wait = Duration::from_millis(50);
    LlmClient::new(c).expect("client")
}

fn completion(text: &str) -> Response {
    axum::Json(serde_json::json!({
        "id": "c1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 4, "total_tokens": 35}
    }))
    .into_response()
}

fn too_many() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response()
}

fn msgs() -> Vec<Message> {
    vec![Message::system("be brief"), Message::user("hello?")]
}

#[tokio::test]
async fn an_answer_with_usage_and_the_request_as_sent() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    let s = serve(Arc::new(move |_, auth, body| {
        *keep.lock().expect("lock") = Some((auth, body));
        completion("Hi there.")
    }))
    .await;
    let a = client(&s).complete(&msgs()).await.expect("answer");
    assert_eq!(a, Answer { text: "Hi there.".into(), prompt_tokens: 31, completion_tokens: 4 });
    let (auth, body) = seen.lock().expect("lock").clone().expect("a request");
    assert_eq!(auth.as_deref(), Some("Bearer sk-loopback"));
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], false);
    assert_eq!(body["messages"][0], serde_json::json!({"role": "system", "content": "be brief"}));
    assert_eq!(body["messages"][1], serde_json::json!({"role": "user", "content": "hello?"}));
}

#[tokio::test]
async fn streamed_chunks_arrive_in_order_with_usage() {
    let s = serve(Arc::new(|_, _, body| {
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        let mut sse = String::new();
        for w in ["The ", "answer ", "is ", "[1]", "."] {
            sse.push_str(&format!("data: {}\n\n", serde_json::json!({"choices": [{"delta": {"content": w}}]})));
        }
        sse.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5}}\n\n");
        sse.push_str("data: [DONE]\n\n");
        ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response()
    }))
    .await;
    let deltas: Vec<Delta> =
        client(&s).stream(&msgs()).await.expect("stream").map(|d| d.expect("delta")).collect().await;
    let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(text, "The answer is [1].");
    assert_eq!(deltas.len(), 6);
    assert_eq!(deltas.last().and_then(|d| d.usage), Some(Usage { prompt_tokens: 12, completion_tokens: 5 }));
}

#[tokio::test]
async fn a_429_then_success_is_retried() {
    let s = serve(Arc::new(|n, _, _| if n == 0 { too_many() } else { completion("ok") })).await;
    let a = client(&s).complete(&msgs()).await.expect("answer after a retry");
    assert_eq!(a.text, "ok");
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_5xx_then_success_is_retried_for_streams_too() {
    let s = serve(Arc::new(|n, _, _| {
        if n == 0 {
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        "data: {\"choices\":[{\"delta\":{\"content\":\"up\"}}]}\n\ndata: [DONE]\n\n".into_response()
    }))
    .await;
    let d: Vec<Result<Delta>> = client(&s).stream(&msgs()).await.expect("stream").collect().await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].as_ref().map(|d| d.text.as_str()).ok(), Some("up"));
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn persistent_429_fails_after_max_retries() {
    let s = serve(Arc::new(|_, _, _| too_many())).await;
    let err = client(&s).complete(&msgs()).await.expect_err("rate-limited");
    assert!(matches!(err, Error::LlmRateLimited { attempts: 3 }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(s.calls.load(Ordering::SeqCst), 3, "1 request + max_retries");
}

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let s = serve(Arc::new(|_, _, _| {
        let body = futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>("late")
        });
        axum::body::Body::from_stream(body).into_response()
    }))
    .await;
    let mut c = client(&s).config().clone();
    c.timeout = Duration::from_millis(300);
    let c = LlmClient::new(c).expect("client");
    let err = c.complete(&msgs()).await.expect_err("timeout");
    assert!(matches!(err, Error::LlmTimeout { after } if after == Duration::from_millis(300)), "{err:?}");
    let mut stream = Box::pin(c.stream(&msgs()).await.expect("headers arrive"));
    let first = stream.next().await.expect("an item");
    assert!(matches!(first, Err(Error::LlmTimeout { .. })), "{first:?}");
    assert!(stream.next().await.is_none(), "the stream ends after an error");
}

#[tokio::test]
async fn a_401_is_an_auth_error_without_retry_and_without_the_key() {
    let s = serve(Arc::new(|_, _, _| (StatusCode::UNAUTHORIZED, "bad key").into_response())).await;
    let err = client(&s).complete(&msgs()).await.expect_err("auth");
    assert!(matches!(err, Error::LlmAuth { status: 401 }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
    assert!(!format!("{err} {err:?}").contains("sk-loopback"));
}

#[tokio::test]
async fn a_malformed_answer_and_a_400_are_typed() {
    let s = serve(Arc::new(|n, _, _| {
        if n == 0 {
            axum::Json(serde_json::json!({"choices": []})).into_response()
        } else {
            (StatusCode::BAD_REQUEST, "unknown model").into_response()
        }
    }))
    .await;
    let c = client(&s);
    assert!(matches!(c.complete(&msgs()).await, Err(Error::LlmMalformed { .. })));
    let err = c.complete(&msgs()).await.expect_err("400");
    assert!(matches!(&err, Error::LlmStatus { status: 400, body } if body == "unknown model"), "{err:?}");
    assert_eq!(s.calls.load(Ordering::SeqCst), 2, "a 400 is not retried");
}
