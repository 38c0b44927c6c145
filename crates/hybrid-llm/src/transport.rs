//! Shared HTTP transport: one pooled client per provider client, bounded
//! retries, timeouts, and streaming with retry before the first event.
//!
//! * A request is retried when its error [`is_retryable`](LlmError::is_retryable)
//!   (408/409/429/5xx/529, connection failures, timeouts) and attempts remain;
//!   other 4xx never are. The wait honours `retry-after-ms`/`retry-after`
//!   (see [`crate::retry`]).
//! * `complete` bounds the whole exchange (send + body) by `request_timeout`.
//! * A stream is retried only until its first event is ready; until then the
//!   attempt is bounded by `request_timeout`, and a stream that closes before
//!   any event is retried too. Silence on a stream is bounded by
//!   `stream_idle_timeout` ([`LlmError::StreamIdle`], not retried): the wait
//!   for the response headers and every gap between bytes. After the first
//!   event, failures end the stream.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use tracing::{debug, warn};

use crate::retry::{RetryPolicy, retry_after_from_headers};
use crate::sse::{Event, SseStream};
use crate::{ChatEvent, ChatStream, LlmError};

/// Timeouts and retries of a provider client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Bound on one attempt: the whole exchange for `complete`, the wait for
    /// the first event for `stream`. Default 600 s.
    pub request_timeout: Duration,
    /// Bound on opening a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Bound on silence in a stream: the wait for its response headers and
    /// each gap between bytes. Default 90 s.
    pub stream_idle_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Speak HTTP/2 from the first byte on plain `http://` (h2c), so that all
    /// requests in flight share one connection. Only for servers that accept
    /// it; over `https://` HTTP/2 is negotiated anyway (ALPN), as the OpenAI
    /// and Anthropic endpoints do. Default off.
    pub http2_prior_knowledge: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            request_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(90),
            retry: RetryPolicy::default(),
            http2_prior_knowledge: false,
        }
    }
}

/// Maps an HTTP error response (status, headers, body text) to a typed error.
pub(crate) type ErrorMapper =
    fn(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError;

/// Turns a provider's server-sent events into [`ChatEvent`]s.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Consumes one event, pushing what it yields to `out`.
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError>;

    /// The byte stream ended without [`is_finished`](Self::is_finished):
    /// complete from what was seen, or fail with `StreamInterrupted`.
    fn on_end(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError>;

    /// The server answered a stream request with a whole JSON body.
    fn on_whole_body(&mut self, body: &[u8], out: &mut VecDeque<ChatEvent>)
    -> Result<(), LlmError>;

    /// Whether the terminal event was seen (no more events are read).
    fn is_finished(&self) -> bool;
}

/// One POST, ready to send (and re-send).
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    /// Full URL.
    pub url: Arc<str>,
    /// Headers (auth, versions, content type).
    pub headers: HeaderMap,
    /// Serialized JSON body.
    pub body: Bytes,
}

/// An HTTP failure and the wait the server asked for.
struct Failure {
    error: LlmError,
    wait: Option<Duration>,
}

impl From<LlmError> for Failure {
    fn from(error: LlmError) -> Self {
        Failure { error, wait: None }
    }
}

/// The pooled HTTP client of one provider client.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    config: Arc<TransportConfig>,
    provider: Arc<str>,
}

impl Transport {
    /// A transport for `provider` (the name used in errors).
    pub fn new(provider: &str, config: TransportConfig) -> Result<Self, LlmError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("hybrid-llm/", env!("CARGO_PKG_VERSION")));
        if config.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|err| LlmError::Config {
            provider: provider.to_string(),
            message: format!("cannot build the HTTP client: {}", error_chain(&err)),
        })?;
        Ok(Transport {
            client,
            config: Arc::new(config),
            provider: Arc::from(provider),
        })
    }

    /// The timeouts and retries in force.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// POSTs `request` and returns the whole success body, retrying as the
    /// policy allows.
    pub(crate) async fn post_json(
        &self,
        request: &PreparedRequest,
        map_error: ErrorMapper,
    ) -> Result<Bytes, LlmError> {
        let mut attempt = 1;
        loop {
            debug!(provider = %self.provider, url = %request.url, attempt, "POST");
            let outcome = match tokio::time::timeout(
                self.config.request_timeout,
                self.attempt_json(request, map_error),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timeout().into()),
            };
            match outcome {
                Ok(body) => return Ok(body),
                Err(failure) => {
                    let retry = failure.error.is_retryable();
                    self.before_retry(attempt, failure, retry).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// POSTs a streaming `request` and decodes its events; failures before
    /// the first event are retried as the policy allows.
    pub(crate) fn post_stream<D, F>(
        &self,
        request: PreparedRequest,
        map_error: ErrorMapper,
        decoder: F,
    ) -> ChatStream
    where
        D: StreamDecoder,
        F: Fn() -> D + Send + Sync + 'static,
    {
        let this = self.clone();
        stream::once(async move { this.open_stream(&request, map_error, &decoder).await })
            .flat_map(|opened| match opened {
                Ok(pump) => pump.into_stream(),
                Err(error) => stream::once(async move { Err(error) }).boxed(),
            })
            .boxed()
    }

    async fn open_stream<D: StreamDecoder>(
        &self,
        request: &PreparedRequest,
        map_error: ErrorMapper,
        decoder: &(impl Fn() -> D + Send + Sync),
    ) -> Result<Pump<D>, LlmError> {
        let mut attempt = 1;
        loop {
            debug!(provider = %self.provider, url = %request.url, attempt, "POST (stream)");
            let opening = self.attempt_stream(request, map_error, decoder());
            let outcome = match tokio::time::timeout(self.config.request_timeout, opening).await {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timeout().into()),
            };
            match outcome {
                Ok(pump) => return Ok(pump),
                Err(failure) => {
                    let retry = failure.error.is_retryable()
                        || matches!(failure.error, LlmError::StreamInterrupted { .. });
                    self.before_retry(attempt, failure, retry).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// Gives up with the failure's error, or waits before the next attempt.
    async fn before_retry(
        &self,
        attempt: u32,
        failure: Failure,
        retryable: bool,
    ) -> Result<(), LlmError> {
        let policy = &self.config.retry;
        let retryable = retryable
            && (policy.retry_rate_limited
                || !matches!(failure.error, LlmError::RateLimited { .. }));
        if !retryable || attempt >= policy.max_attempts {
            debug!(provider = %self.provider, attempt, error = %failure.error, "giving up");
            return Err(failure.error);
        }
        let delay = policy.delay(attempt, failure.wait);
        warn!(
            provider = %self.provider,
            attempt,
            max_attempts = policy.max_attempts,
            kind = failure.error.kind(),
            error = %failure.error,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "retrying after error"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    async fn attempt_json(
        &self,
        request: &PreparedRequest,
        map_error: ErrorMapper,
    ) -> Result<Bytes, Failure> {
        let response = self.send(request, "application/json", map_error).await?;
        response
            .bytes()
            .await
            .map_err(|err| self.map_reqwest(err, &request.url).into())
    }

    async fn attempt_stream<D: StreamDecoder>(
        &self,
        request: &PreparedRequest,
        map_error: ErrorMapper,
        mut decoder: D,
    ) -> Result<Pump<D>, Failure> {
        let idle = self.config.stream_idle_timeout;
        let response =
            match tokio::time::timeout(idle, self.send(request, "text/event-stream", map_error))
                .await
            {
                Ok(response) => response?,
                Err(_) => {
                    return Err(LlmError::StreamIdle {
                        provider: self.provider.to_string(),
                        after: idle,
                    }
                    .into());
                }
            };
        let mut pending = VecDeque::new();
        if is_json(response.headers()) {
            // The server ignored `stream: true` and answered with one body.
            let body = response
                .bytes()
                .await
                .map_err(|err| self.map_reqwest(err, &request.url))?;
            decoder.on_whole_body(&body, &mut pending)?;
            return Ok(Pump {
                sse: None,
                decoder,
                pending,
                finished: true,
            });
        }
        // Once the body has started, a dropped connection is an interrupted
        // stream (retried only if no event was decoded yet).
        let provider = self.provider.clone();
        let bytes = response
            .bytes_stream()
            .map_err(move |err| LlmError::StreamInterrupted {
                provider: provider.to_string(),
                message: format!("connection lost: {}", error_chain(&err.without_url())),
            })
            .boxed();
        let sse = SseStream::new(
            bytes,
            self.config.stream_idle_timeout,
            self.provider.clone(),
        );
        let mut pump = Pump {
            sse: Some(sse),
            decoder,
            pending,
            finished: false,
        };
        pump.fill_first().await?;
        Ok(pump)
    }

    /// Sends once; a non-success status becomes a typed error with the wait
    /// the server asked for.
    async fn send(
        &self,
        request: &PreparedRequest,
        accept: &'static str,
        map_error: ErrorMapper,
    ) -> Result<reqwest::Response, Failure> {
        let mut headers = request.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        let response = self
            .client
            .post(&*request.url)
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|err| self.map_reqwest(err, &request.url))?;
        let status = response.status();
        debug!(provider = %self.provider, status = status.as_u16(), "response");
        if status.is_success() {
            return Ok(response);
        }
        Err(self.error_response(response, status, map_error).await)
    }

    async fn error_response(
        &self,
        response: reqwest::Response,
        status: StatusCode,
        map_error: ErrorMapper,
    ) -> Failure {
        let headers = response.headers().clone();
        let wait = retry_after_from_headers(&headers);
        let body = match response.bytes().await {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(_) => String::new(),
        };
        let error = map_error(&self.provider, status.as_u16(), &headers, &body);
        Failure { error, wait }
    }

    fn timeout(&self) -> LlmError {
        LlmError::Timeout {
            provider: self.provider.to_string(),
            after: self.config.request_timeout,
        }
    }

    fn map_reqwest(&self, err: reqwest::Error, url: &str) -> LlmError {
        if err.is_timeout() {
            let after = if err.is_connect() {
                self.config.connect_timeout
            } else {
                self.config.request_timeout
            };
            return LlmError::Timeout {
                provider: self.provider.to_string(),
                after,
            };
        }
        LlmError::Connection {
            provider: self.provider.to_string(),
            url: url.to_string(),
            message: error_chain(&err.without_url()),
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Decoded events waiting to be yielded, and the source of more.
struct Pump<D> {
    sse: Option<SseStream>,
    decoder: D,
    pending: VecDeque<ChatEvent>,
    finished: bool,
}

impl<D: StreamDecoder> Pump<D> {
    /// Reads until the first event is ready (or the stream is over).
    async fn fill_first(&mut self) -> Result<(), LlmError> {
        while self.pending.is_empty() && !self.finished {
            self.advance().await?;
        }
        Ok(())
    }

    /// Reads one server event into `pending`.
    async fn advance(&mut self) -> Result<(), LlmError> {
        let Some(sse) = self.sse.as_mut() else {
            self.finished = true;
            return Ok(());
        };
        let step = match sse.next_event().await {
            Some(Ok(event)) => self.decoder.on_event(&event, &mut self.pending),
            Some(Err(error)) => Err(error),
            None => {
                self.finished = true;
                self.sse = None;
                if self.decoder.is_finished() {
                    Ok(())
                } else {
                    self.decoder.on_end(&mut self.pending)
                }
            }
        };
        if step.is_err() || self.decoder.is_finished() {
            self.finished = true;
            self.sse = None;
        }
        step
    }

    async fn next(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if let Err(error) = self.advance().await {
                self.pending.clear();
                return Some(Err(error));
            }
        }
    }

    fn into_stream(self) -> ChatStream {
        stream::unfold(self, |mut pump| async move {
            pump.next().await.map(|item| (item, pump))
        })
        .boxed()
    }
}
