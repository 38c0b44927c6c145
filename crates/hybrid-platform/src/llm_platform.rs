//! A platform that is one agent on one chat model: the `openai` and `claude`
//! platforms, and any custom provider registered the same way.
//!
//! It sends the role's instructions and the task, streams the answer (each text
//! delta becomes an event) or asks for it whole, and reports usage and cost.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use hybrid_core::{EventKind, StageResult, Task};
use hybrid_llm::{ChatEvent, ChatModel, ChatRequest, ChatResponse, LlmError, Message};

use crate::roles::{self, Layer};
use crate::{Capabilities, Platform, PlatformError, RunContext};

/// One agent on one model.
#[derive(Debug, Clone)]
pub struct LlmPlatform {
    id: String,
    layer: Layer,
    model: ModelSlot,
    instructions: Option<String>,
    stream: bool,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
}

/// The model, or why there is none (a missing API key is reported when the
/// platform is used, not when it is configured).
#[derive(Clone)]
enum ModelSlot {
    Ready(Arc<dyn ChatModel>),
    Unavailable(LlmError),
}

impl std::fmt::Debug for ModelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSlot::Ready(m) => write!(f, "Ready({}:{})", m.provider(), m.model()),
            ModelSlot::Unavailable(e) => write!(f, "Unavailable({e})"),
        }
    }
}

impl LlmPlatform {
    /// A platform named `id` in `layer` over `model`.
    pub fn new(id: impl Into<String>, layer: Layer, model: Arc<dyn ChatModel>) -> Self {
        LlmPlatform {
            id: id.into(),
            layer,
            model: ModelSlot::Ready(model),
            instructions: None,
            stream: true,
            max_tokens: None,
            temperature: None,
        }
    }

    /// A platform that fails with `error` when used (e.g. its API key is missing).
    pub fn unavailable(id: impl Into<String>, layer: Layer, error: LlmError) -> Self {
        LlmPlatform {
            id: id.into(),
            layer,
            model: ModelSlot::Unavailable(error),
            instructions: None,
            stream: true,
            max_tokens: None,
            temperature: None,
        }
    }

    /// Overrides the role's default instructions.
    pub fn with_instructions(mut self, instructions: Option<String>) -> Self {
        self.instructions = instructions;
        self
    }

    /// Streams (default) or asks for whole answers.
    pub fn with_streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Output token cap per call.
    pub fn with_max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sampling temperature.
    pub fn with_temperature(mut self, temperature: Option<f32>) -> Self {
        self.temperature = temperature;
        self
    }

    fn request(&self, task: &Task, role: &str) -> ChatRequest {
        let system = self
            .instructions
            .as_deref()
            .unwrap_or_else(|| roles::instructions_for(role));
        let mut req = ChatRequest::new(vec![
            Message::system(system),
            Message::user(roles::user_prompt(task)),
        ]);
        req.max_tokens = self.max_tokens;
        req.temperature = self.temperature;
        req
    }

    async fn call_streaming(
        model: &dyn ChatModel,
        req: ChatRequest,
        ctx: &RunContext,
    ) -> Result<ChatResponse, PlatformError> {
        let mut stream = model.stream(req);
        while let Some(item) = stream.next().await {
            match item? {
                ChatEvent::TextDelta(text) if !text.is_empty() => {
                    ctx.emit(EventKind::TextDelta {
                        stage: ctx.stage.clone(),
                        text,
                    })
                    .await?;
                }
                ChatEvent::Completed(resp) => return Ok(resp),
                _ => {}
            }
        }
        Err(LlmError::StreamInterrupted {
            provider: model.provider().to_owned(),
            message: "the stream ended without a final response".into(),
        }
        .into())
    }
}

#[async_trait]
impl Platform for LlmPlatform {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            system_access: false,
            tools: false,
            streaming: self.stream,
        }
    }

    fn model(&self) -> Option<&str> {
        match &self.model {
            ModelSlot::Ready(m) => Some(m.model()),
            ModelSlot::Unavailable(_) => None,
        }
    }

    fn agent_for(&self, task: &Task) -> String {
        roles::role_for(self.layer, task).to_owned()
    }

    async fn execute(&self, task: &Task, ctx: &RunContext) -> Result<StageResult, PlatformError> {
        let model = match &self.model {
            ModelSlot::Ready(m) => m.clone(),
            ModelSlot::Unavailable(e) => return Err(e.clone().into()),
        };
        let role = roles::role_for(self.layer, task);
        let req = self.request(task, role);
        let started = Instant::now();
        let call = async {
            if self.stream {
                Self::call_streaming(model.as_ref(), req, ctx).await
            } else {
                Ok(model.complete(req).await?)
            }
        };
        let resp = tokio::select! {
            r = call => r?,
            () = ctx.cancel.cancelled() => return Err(PlatformError::Cancelled),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        ctx.emit(EventKind::ModelCall {
            stage: ctx.stage.clone(),
            model: resp.model.clone(),
            usage: resp.usage,
            cost_usd: resp.cost,
            duration_ms,
        })
        .await?;
        Ok(StageResult {
            agent: role.to_owned(),
            platform: self.id.clone(),
            model: Some(resp.model),
            output: resp.text,
            usage: resp.usage,
            cost_usd: resp.cost,
            finish_reason: resp.raw_finish_reason,
            duration_ms,
            ..Default::default()
        })
    }
}
