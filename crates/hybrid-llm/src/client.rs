//! The HTTP chat client every provider shares, written once over a
//! [`WireProtocol`]: endpoint and headers built at construction, then per
//! call the model choice, the body, the [`CallContext`] and the POST, whole
//! ([`ClientCore::complete`]) or streamed ([`ClientCore::stream`]).
//!
//! A provider module supplies only what differs: its URL, auth headers,
//! request body, error mapping, response parser and stream decoder.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream as futures_stream;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;

use crate::assemble::CallContext;
use crate::config::ProviderConfig;
use crate::endpoint::add_extra_headers;
use crate::estimate::{Calibration, CostEstimate, ProviderKind, estimate_request};
use crate::transport::{PreparedRequest, StreamDecoder, Transport};
use crate::{ChatRequest, ChatResponse, ChatStream, LlmError};
use hybrid_core::Usage;

/// One provider's wire format, as the shared client core needs it.
pub(crate) trait WireProtocol: Send + Sync + 'static {
    /// The provider's public config.
    type Config: ProviderConfig;
    /// Decodes the provider's server-sent events.
    type Decoder: StreamDecoder;

    /// The URL requests go to; a `Config` error when it cannot work.
    fn endpoint(config: &Self::Config, provider: &str) -> Result<String, LlmError>;

    /// Adds the authentication and version headers to `headers`.
    fn auth_headers(
        config: &Self::Config,
        provider: &str,
        headers: &mut HeaderMap,
    ) -> Result<(), LlmError>;

    /// The request body for `request` against `model`.
    fn build_body<'a>(
        request: &'a ChatRequest,
        model: &'a str,
        config: &Self::Config,
        stream: bool,
    ) -> impl Serialize;

    /// Maps an HTTP error response to a typed error.
    fn map_error(provider: &str, status: u16, headers: &HeaderMap, body: &str) -> LlmError;

    /// Parses a whole success body.
    fn parse_response(body: &[u8], ctx: &CallContext) -> Result<ChatResponse, LlmError>;

    /// A decoder for one streamed call.
    fn new_decoder(ctx: CallContext) -> Self::Decoder;

    /// How requests to this provider are counted for a cost estimate.
    fn estimate_kind(config: &Self::Config) -> ProviderKind;

    /// The output cap an estimate assumes when a request sets no `max_tokens`.
    fn default_max_output_tokens(config: &Self::Config) -> u64;
}

/// A provider client's state: its config, endpoint, headers and pooled
/// transport. Provider clients hold it in an `Arc` so clones share it.
#[derive(Debug)]
pub(crate) struct ClientCore<P: WireProtocol> {
    config: P::Config,
    provider: Arc<str>,
    url: Arc<str>,
    headers: HeaderMap,
    transport: Transport,
    calibration: Calibration,
}

impl<P: WireProtocol> ClientCore<P> {
    /// The core for `config`; fails on a base URL or header that cannot work.
    pub(crate) fn new(config: P::Config) -> Result<Self, LlmError> {
        let provider: Arc<str> = Arc::from(config.provider_name());
        let url = P::endpoint(&config, &provider)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        P::auth_headers(&config, &provider, &mut headers)?;
        add_extra_headers(&mut headers, config.extra_headers(), &provider)?;
        let transport = Transport::new(&provider, config.transport().clone())?;
        Ok(ClientCore {
            config,
            provider,
            url: Arc::from(url),
            headers,
            transport,
            calibration: Calibration::new(),
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &P::Config {
        &self.config
    }

    /// The URL requests go to.
    pub(crate) fn endpoint(&self) -> &str {
        &self.url
    }

    /// The provider name, for [`ChatModel::provider`](crate::ChatModel::provider).
    pub(crate) fn provider(&self) -> &str {
        self.config.provider_name()
    }

    /// The configured model, for [`ChatModel::model`](crate::ChatModel::model).
    pub(crate) fn model(&self) -> &str {
        self.config.model()
    }

    /// One turn, whole.
    pub(crate) async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let (prepared, ctx) = self.prepare(request, false)?;
        let body = self.transport.post_json(&prepared, P::map_error).await?;
        P::parse_response(&body, &ctx)
    }

    /// One turn, streamed.
    pub(crate) fn stream(&self, request: &ChatRequest) -> ChatStream {
        match self.prepare(request, true) {
            Ok((prepared, ctx)) => self
                .transport
                .post_stream(prepared, P::map_error, move || P::new_decoder(ctx.clone())),
            Err(error) => futures_stream::once(async move { Err(error) }).boxed(),
        }
    }

    /// The worst-case estimate of `request`: the request's model, else the
    /// configured one, priced with the config's price table.
    pub(crate) fn estimate(&self, request: &ChatRequest) -> CostEstimate {
        let model = request.model.as_deref().unwrap_or(self.config.model());
        estimate_request(
            P::estimate_kind(&self.config),
            model,
            request,
            P::default_max_output_tokens(&self.config),
            self.config.prices(),
            &self.calibration,
        )
    }

    /// Feeds the usage of a call made after `estimate` to the calibration.
    pub(crate) fn observe_usage(&self, estimate: &CostEstimate, usage: &Usage) {
        self.calibration.observe_usage(estimate, usage);
    }

    /// The POST for `request`, and what its response needs to be read.
    fn prepare(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<(PreparedRequest, CallContext), LlmError> {
        let model = request.model.as_deref().unwrap_or(self.config.model());
        let body = P::build_body(request, model, &self.config, stream);
        let body = serde_json::to_vec(&body).map_err(|err| LlmError::Config {
            provider: self.provider.to_string(),
            message: format!("cannot serialize the request: {err}"),
        })?;
        let ctx = CallContext {
            provider: self.provider.clone(),
            model: model.to_string(),
            prices: self.config.prices().clone(),
        };
        let prepared = PreparedRequest {
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: Bytes::from(body),
        };
        Ok((prepared, ctx))
    }
}

/// Implements [`ChatModel`](crate::ChatModel) for a provider client whose
/// field `inner` is an `Arc<ClientCore<_>>`, by forwarding to the core.
macro_rules! forward_chat_model {
    ($client:ty) => {
        #[async_trait::async_trait]
        impl $crate::ChatModel for $client {
            fn provider(&self) -> &str {
                self.inner.provider()
            }

            fn model(&self) -> &str {
                self.inner.model()
            }

            async fn complete(
                &self,
                request: $crate::ChatRequest,
            ) -> Result<$crate::ChatResponse, $crate::LlmError> {
                self.inner.complete(&request).await
            }

            fn stream(&self, request: $crate::ChatRequest) -> $crate::ChatStream {
                self.inner.stream(&request)
            }

            fn estimate(
                &self,
                request: &$crate::ChatRequest,
            ) -> Option<$crate::estimate::CostEstimate> {
                Some(self.inner.estimate(request))
            }

            fn observe_usage(
                &self,
                estimate: &$crate::estimate::CostEstimate,
                usage: &hybrid_core::Usage,
            ) {
                self.inner.observe_usage(estimate, usage);
            }
        }
    };
}

pub(crate) use forward_chat_model;
