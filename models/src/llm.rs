//! The LLM client: an OpenAI-compatible chat-completions client (`POST {base_url}/chat/completions`)
//! for the assistant in `orbas-search`.
//!
//! Owns the wire format (JSON request/response, and server-sent events for streaming: `data:` lines,
//! ended by `data: [DONE]`), retries with exponential backoff on 429 and 5xx (honouring
//! `Retry-After`, bounded by [`LlmConfig::max_retry_wait`]), timeouts (whole answer for
//! [`LlmClient::complete`]; until the response starts and then between chunks for
//! [`LlmClient::stream`]) and typed errors for each failure ([`Error::LlmTimeout`],
//! [`Error::LlmAuth`], [`Error::LlmRateLimited`], [`Error::LlmStatus`], [`Error::LlmMalformed`]).
//!
//! Invariant: the API key is a [`SecretString`]; it only leaves this module in the `Authorization`
//! header, and neither the config's nor the client's `Debug` shows it. Nothing here logs prompts or
//! answers (they hold record text); spans carry the model, attempt counts and token counts only.
//!
//! Written on the workspace's reqwest rather than async-openai: the same wire format, without a second
//! HTTP/TLS stack in the graph.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument, warn};

use crate::error::{Error, Result};

/// Where and how to reach the chat model.
#[derive(Clone)]
pub struct LlmConfig {
    /// The API root, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; `None` for servers without authentication.
    pub api_key: Option<SecretString>,
    /// How long a whole answer may take ([`LlmClient::complete`]), or the response's start and each
    /// gap between chunks ([`LlmClient::stream`]).
    pub timeout: Duration,
    /// Retries after a 429 or 5xx (so at most `max_retries + 1` requests).
    pub max_retries: u32,
    /// The first backoff; doubled per retry.
    pub initial_backoff: Duration,
    /// The longest wait before a retry, whatever `Retry-After` asks for.
    pub max_retry_wait: Duration,
    /// Sampling temperature (low: answers stick to the sources).
    pub temperature: f32,
}

impl LlmConfig {
    /// Defaults for a model at `base_url`: 60 s timeout, 3 retries from 500 ms, waits ≤ 10 s.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, api_key: Option<SecretString>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_retry_wait: Duration::from_secs(10),
            temperature: 0.1,
        }
    }

    /// From `ORBAS_LLM_BASE_URL`, `ORBAS_LLM_MODEL` and `ORBAS_LLM_API_KEY` (optional); `None` when the
    /// base URL or the model is unset or empty (no language model configured).
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let key = var("ORBAS_LLM_API_KEY").map(SecretString::from);
        Some(Self::new(var("ORBAS_LLM_BASE_URL")?, var("ORBAS_LLM_MODEL")?, key))
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
}

/// Token counts as the server reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// One piece of a streamed answer: text to append, and (usually on the last chunk) the usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub text: String,
    pub usage: Option<Usage>,
}

/// A chat client (cheap to clone: the HTTP connection pool is shared).
#[derive(Clone)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient").field("config", &self.config).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    delta: Option<ChoiceMessage>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| Error::LlmHttp { what: "building the HTTP client", source })?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The whole answer to `messages`, with the server's token counts.
    #[instrument(skip_all, fields(model = %self.config.model, messages = messages.len()))]
    pub async fn complete(&self, messages: &[Message]) -> Result<Answer> {
        let timeout = self.config.timeout;
        let work = async {
            let resp = self.send(messages, false).await?;
            resp.bytes().await.map_err(|source| Error::LlmHttp { what: "reading the answer", source })
        };
        let body = tokio::time::timeout(timeout, work).await.map_err(|_| Error::LlmTimeout { after: timeout })??;
        let parsed: ChatResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::LlmMalformed { what: format!("the answer is not a chat completion: {e}") })?;
        let text = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message)
            .and_then(|m| m.content)
            .ok_or_else(|| Error::LlmMalformed { what: "the answer has no choices[0].message.content".into() })?;
        let usage = parsed.usage.unwrap_or_default();
        debug!(prompt_tokens = usage.prompt_tokens, completion_tokens = usage.completion_tokens, "answered");
        Ok(Answer { text, prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens })
    }

    /// The answer to `messages` as it is generated. Retries and the first timeout happen before this
    /// returns; the stream then yields text in order, an error ends it.
    #[instrument(skip_all, fields(model = %self.config.model, messages = messages.len()))]
    pub async fn stream(&self, messages: &[Message]) -> Result<impl Stream<Item = Result<Delta>> + Send + 'static> {
        let timeout = self.config.timeout;
        let resp = tokio::time::timeout(timeout, self.send(messages, true))
            .await
            .map_err(|_| Error::LlmTimeout { after: timeout })??;
        let state = SseState { resp: Some(resp), parser: SseParser::default(), timeout };
        Ok(futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) }))
    }

    /// Sends the request, retrying 429 and 5xx; returns the first successful response.
    async fn send(&self, messages: &[Message], stream: bool) -> Result<reqwest::Response> {
        let body = ChatRequest {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        };
        let url = self.config.endpoint();
        let mut attempt = 0u32;
        loop {
            let mut req = self.http.post(&url).json(&body);
            if let Some(key) = &self.config.api_key {
                req = req.bearer_auth(key.expose_secret());
            }
            let resp = req.send().await.map_err(|source| Error::LlmHttp { what: "sending the request", source })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let code = status.as_u16();
            if code == 401 || code == 403 {
                return Err(Error::LlmAuth { status: code });
            }
            let retryable = code == 429 || status.is_server_error();
            if !retryable || attempt >= self.config.max_retries {
                if code == 429 {
                    return Err(Error::LlmRateLimited { attempts: attempt + 1 });
                }
                let text = resp.text().await.unwrap_or_default();
                return Err(Error::LlmStatus { status: code, body: text.chars().take(300).collect() });
            }
            let retry_after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
            let wait = retry_delay(&self.config, attempt, retry_after);
            warn!(status = code, attempt, wait_ms = wait.as_millis() as u64, "the language model refused; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The wait before retry number `attempt + 1`: `Retry-After` (seconds) when given, else exponential
/// backoff from [`LlmConfig::initial_backoff`]; never more than [`LlmConfig::max_retry_wait`].
fn retry_delay(cfg: &LlmConfig, attempt: u32, retry_after: Option<&str>) -> Duration {
    let asked = retry_after.and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    let wait = match asked {
        Some(secs) => Duration::from_secs_f64(secs.min(86_400.0)),
        None => cfg.initial_backoff.saturating_mul(2u32.saturating_pow(attempt.min(16))),
    };
    wait.min(cfg.max_retry_wait)
}

/// Reading a streamed response.
struct SseState {
    resp: Option<reqwest::Response>,
    parser: SseParser,
    timeout: Duration,
}

impl SseState {
    async fn next(&mut self) -> Option<Result<Delta>> {
        loop {
            if let Some(item) = self.parser.pending.pop_front() {
                return Some(item);
            }
            if self.parser.done {
                return None;
            }
            let resp = self.resp.as_mut()?;
            let chunk = match tokio::time::timeout(self.timeout, resp.chunk()).await {
                Err(_) => Err(Error::LlmTimeout { after: self.timeout }),
                Ok(Err(source)) => Err(Error::LlmHttp { what: "reading the stream", source }),
                Ok(Ok(c)) => Ok(c),
            };
            match chunk {
                Ok(Some(bytes)) => self.parser.feed(&bytes),
                Ok(None) => {
                    self.resp = None;
                    self.parser.finish();
                }
                Err(e) => {
                    self.resp = None;
                    self.parser.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Server-sent events → deltas: splits on line ends (a line may span chunks, and a UTF-8 character
/// too), reads `data:` lines, stops at `[DONE]`.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    pending: VecDeque<Result<Delta>>,
    done: bool,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            self.line(&line);
            if self.done {
                self.buf.clear();
                return;
            }
        }
    }

    /// The body ended: a last line without a newline counts; an end without `[DONE]` is malformed.
    fn finish(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line);
        }
        if !self.done {
            self.done = true;
            self.pending.push_back(Err(Error::LlmMalformed { what: "the stream ended without [DONE]".into() }));
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let Ok(line) = std::str::from_utf8(raw) else {
            self.fail("a stream line is not UTF-8".into());
            return;
        };
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(data) = line.strip_prefix("data:") else { return }; // comments, event:, id:, blank
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let chunk: StreamChunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => return self.fail(format!("a stream chunk is not JSON: {e}")),
        };
        if chunk.error.is_some() {
            return self.fail("the server sent an error event in the stream".into());
        }
        let text: String = chunk.choices.into_iter().filter_map(|c| c.delta.and_then(|d| d.content)).collect();
        if !text.is_empty() || chunk.usage.is_some() {
            self.pending.push_back(Ok(Delta { text, usage: chunk.usage }));
        }
    }

    fn fail(&mut self, what: String) {
        self.pending.push_back(Err(Error::LlmMalformed { what }));
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LlmConfig {
        let mut c = LlmConfig::new("http://x/v1/", "m", Some(SecretString::from("sk-very-secret")));
        c.initial_backoff = Duration::from_millis(100);
        c.max_retry_wait = Duration::from_secs(2);
        c
    }

    #[test]
    fn retry_waits_follow_retry_after_and_are_bounded() {
        let c = cfg();
        assert_eq!(retry_delay(&c, 0, None), Duration::from_millis(100));
        assert_eq!(retry_delay(&c, 2, None), Duration::from_millis(400));
        assert_eq!(retry_delay(&c, 10, None), Duration::from_secs(2), "backoff capped");
        assert_eq!(retry_delay(&c, 0, Some("1")), Duration::from_secs(1));
        assert_eq!(retry_delay(&c, 0, Some("3600")), Duration::from_secs(2), "Retry-After capped");
        assert_eq!(retry_delay(&c, 1, Some("soon")), Duration::from_millis(200), "unparsable: backoff");
        assert_eq!(retry_delay(&c, 0, Some("-5")), Duration::from_millis(100));
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let c = cfg();
        let client = LlmClient::new(c.clone()).expect("client");
        for s in [format!("{c:?}"), format!("{client:?}"), format!("{c:#?}")] {
            assert!(!s.contains("sk-very-secret"), "{s}");
            assert!(s.contains("[redacted]"), "{s}");
        }
        assert_eq!(c.endpoint(), "http://x/v1/chat/completions");
    }

    #[test]
    fn sse_lines_split_across_chunks_reassemble() {
        let mut p = SseParser::default();
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}\r\n\r\n: keep-alive\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n\
                    data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"after\"}}]}\n";
        for piece in body.as_bytes().chunks(5) {
            p.feed(piece);
        }
        p.finish();
        let items: Vec<Delta> = p.pending.into_iter().map(|r| r.expect("delta")).collect();
        assert_eq!(
            items,
            vec![
                Delta { text: "Hé".into(), usage: None },
                Delta { text: "llo".into(), usage: None },
                Delta { text: String::new(), usage: Some(Usage { prompt_tokens: 7, completion_tokens: 2 }) },
            ]
        );
    }

    #[test]
    fn a_stream_without_done_or_with_garbage_is_malformed() {
        let mut p = SseParser::default();
        p.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n");
        p.finish();
        assert!(matches!(p.pending.pop_back(), Some(Err(Error::LlmMalformed { .. }))));
        let mut p = SseParser::default();
        p.feed(b"data: not json\n");
        assert!(p.done);
        assert!(matches!(p.pending.pop_front(), Some(Err(Error::LlmMalformed { .. }))));
    }
}

#[cfg(test)]
#[path = "llm_loopback_tests.rs"]
mod loopback;
