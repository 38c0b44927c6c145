//! The one axum handler: records the request, rejects it the way the real
//! API would (unknown path, key, headers, body), else answers with the next
//! scripted reply (an Anthropic turn after running the request through the
//! server's prompt cache).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, Version};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::failure::Failure;
use crate::record::{Protocol, RecordedRequest};
use crate::respond::{self, Ctx};
use crate::script::Reply;
use crate::state::SharedState;
use crate::{validate, wire};

/// Handles every request the server receives.
pub(crate) async fn handle(
    State(state): State<Arc<SharedState>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let protocol = Protocol::detect(uri.path(), &headers);
    let recorded = RecordedRequest::capture(&method, &uri, version, &headers, &body, protocol);
    let body = recorded.body.clone();
    let required_key = state.record(recorded);

    let mut ctx = Ctx {
        protocol,
        stream: body.get("stream").and_then(Value::as_bool) == Some(true),
        include_usage: protocol == Protocol::OpenAi
            && body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true),
        body,
        request_id: wire::new_request_id(protocol),
        presented_key: validate::presented_key(protocol, &headers).unwrap_or_default(),
        shutdown: state.shutdown.clone(),
        prompt_cache: None,
    };

    if method != Method::POST || uri.path() != protocol.endpoint() {
        let not_found = Failure::NotFound {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
        };
        return respond::failure(&ctx, &not_found, &[]);
    }
    if let Err(failure) = validate::check(protocol, &headers, &ctx.body, required_key.as_deref()) {
        return respond::failure(&ctx, &failure, &[]);
    }
    match state.next_reply(&ctx.body) {
        Some(reply) => {
            // A model turn is an answered prompt: Anthropic's cache sees it.
            if protocol == Protocol::Anthropic && matches!(reply, Reply::Turn(_)) {
                ctx.prompt_cache = state.prompt_cache(&ctx.body);
            }
            respond::render(reply, &ctx).await
        }
        None => respond::failure(&ctx, &Failure::NoScriptedReply, &[]),
    }
}
