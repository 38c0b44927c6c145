//! `http_request` (off unless enabled) and `notify` (POST JSON to a configured webhook).

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::args::{parse_args, schema_of};
use crate::output::{cap_text, describe_bytes};
use crate::{NotifyConfig, Tool, ToolContext, ToolOutput, ToolSpec};

/// Arguments of `http_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpArgs {
    /// HTTP method: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    method: String,
    /// Absolute http:// or https:// URL.
    url: String,
    /// Request headers.
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Request body (text).
    #[serde(default)]
    body: Option<String>,
}

/// Arguments of `notify`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NotifyArgs {
    /// The message.
    message: String,
    /// Optional title.
    #[serde(default)]
    title: Option<String>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap_or_default()
}

fn check_url(tool: &str, raw: &str) -> Result<reqwest::Url, ToolOutput> {
    let url = reqwest::Url::parse(raw).map_err(|e| {
        ToolOutput::error(format!("invalid arguments for {tool}: field `url`: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolOutput::error(format!(
            "invalid arguments for {tool}: field `url`: scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    Ok(url)
}

/// Makes HTTP requests (register only when enabled).
#[derive(Debug, Clone)]
pub struct HttpRequestTool {
    client: reqwest::Client,
}

impl HttpRequestTool {
    /// A tool with its own HTTP client.
    pub fn new() -> Self {
        Self { client: client() }
    }
}

impl Default for HttpRequestTool {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for HttpRequestTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http_request".to_owned(),
            description: "Make an HTTP request and return the status, a few headers and the \
                body (capped; binary bodies are not shown)."
                .to_owned(),
            parameters: schema_of::<HttpArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: HttpArgs = match parse_args("http_request", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let method = args.method.to_ascii_uppercase();
        let method = match method.as_str() {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
                match reqwest::Method::from_bytes(method.as_bytes()) {
                    Ok(m) => m,
                    Err(e) => return ToolOutput::error(format!("http_request: {e}")),
                }
            }
            _ => {
                return ToolOutput::error(format!(
                    "invalid arguments for http_request: field `method`: `{}` is not one of \
                     GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                    args.method
                ));
            }
        };
        let url = match check_url("http_request", &args.url) {
            Ok(u) => u,
            Err(e) => return e,
        };
        let mut request = self.client.request(method, url).timeout(ctx.limits.timeout);
        for (name, value) in args.headers.iter().flatten() {
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes());
            let val = reqwest::header::HeaderValue::from_str(value);
            match (header, val) {
                (Ok(h), Ok(v)) => request = request.header(h, v),
                _ => {
                    return ToolOutput::error(format!(
                        "invalid arguments for http_request: field `headers.{name}`: not a valid \
                         header"
                    ));
                }
            }
        }
        if let Some(body) = args.body {
            request = request.body(body);
        }
        let max = ctx.limits.max_output_bytes;
        let started = std::time::Instant::now();
        let work = async {
            let response = request.send().await?;
            let status = response.status();
            let headers: Vec<String> = ["content-type", "content-length", "location"]
                .iter()
                .filter_map(|h| {
                    response
                        .headers()
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| format!("{h}: {v}"))
                })
                .collect();
            let mut body = Vec::new();
            let mut total = 0u64;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                total += chunk.len() as u64;
                let room = max.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok::<_, reqwest::Error>((status, headers, body, total))
        };
        let result = tokio::select! {
            r = work => r,
            () = ctx.cancel.cancelled() => return ToolOutput::error("http_request: cancelled"),
        };
        match result {
            Ok((status, headers, body, total)) => {
                let (text, binary) = describe_bytes(&body, total, total > body.len() as u64);
                let mut out = format!("HTTP {status}\n");
                for h in &headers {
                    out.push_str(h);
                    out.push('\n');
                }
                out.push('\n');
                let head_len = out.len() as u64;
                out.push_str(&text);
                let shown_total = if binary {
                    out.len() as u64
                } else {
                    head_len + total
                };
                let (content, truncated) = cap_text(&out, shown_total, max);
                ToolOutput {
                    content,
                    is_error: false,
                    truncated,
                    metadata: serde_json::json!({
                        "status": status.as_u16(),
                        "bytes": total,
                        "binary": binary,
                        "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    }),
                }
            }
            Err(e) if e.is_timeout() => ToolOutput::error(format!(
                "http_request: timed out after {}s",
                ctx.limits.timeout.as_secs()
            )),
            Err(e) => ToolOutput::error(format!("http_request: {}", error_chain(&e))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Posts `{"title", "message", "text"}` to the configured webhook.
#[derive(Debug, Clone)]
pub struct NotifyTool {
    config: NotifyConfig,
    client: reqwest::Client,
}

impl NotifyTool {
    /// A notifier for this webhook.
    pub fn new(config: NotifyConfig) -> Self {
        Self {
            config,
            client: client(),
        }
    }
}

#[async_trait]
impl Tool for NotifyTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "notify".to_owned(),
            description: "Send a notification (a message with an optional title) to the \
                team's configured webhook."
                .to_owned(),
            parameters: schema_of::<NotifyArgs>(),
        }
    }

    async fn call(&self, args: serde_json::Value, ctx: &ToolContext) -> ToolOutput {
        let args: NotifyArgs = match parse_args("notify", args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.message.trim().is_empty() {
            return ToolOutput::error(
                "invalid arguments for notify: field `message`: must not be empty",
            );
        }
        let url = match reqwest::Url::parse(&self.config.webhook_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => {
                return ToolOutput::error(
                    "notify: the configured webhook URL is not a valid http(s) URL",
                );
            }
        };
        let text = match &args.title {
            Some(t) => format!("{t}: {}", args.message),
            None => args.message.clone(),
        };
        let payload = serde_json::json!({
            "title": args.title,
            "message": args.message,
            "text": text,
        });
        let mut request = self
            .client
            .post(url)
            .timeout(ctx.limits.timeout)
            .json(&payload);
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let result = tokio::select! {
            r = request.send() => r,
            () = ctx.cancel.cancelled() => return ToolOutput::error("notify: cancelled"),
        };
        match result {
            Ok(response) if response.status().is_success() => {
                let status = response.status();
                ToolOutput::ok(format!("notification sent (HTTP {status})"))
                    .with_meta("status", status.as_u16())
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let (body, _) = cap_text(&body, body.len() as u64, 512);
                ToolOutput::error(format!(
                    "notify: the webhook answered HTTP {status}\n{body}"
                ))
                .with_meta("status", status.as_u16())
            }
            Err(e) => ToolOutput::error(format!("notify: {}", error_chain(&e))),
        }
    }
}
