//! Incremental server-sent-events decoding with an idle timeout.
//!
//! Bytes are decoded into events as they arrive (by `eventsource-stream`);
//! nothing buffers the whole response. If no bytes arrive for longer than the
//! idle timeout the stream fails with [`LlmError::StreamIdle`]. Whether an
//! end of stream is premature is decided by the provider's decoder, which
//! knows its terminal event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError, Eventsource};
use futures::StreamExt;
use futures::stream::{self, BoxStream};

use crate::LlmError;

pub use eventsource_stream::Event;

/// A byte stream whose transport errors are already typed.
pub type ByteStream = BoxStream<'static, Result<Bytes, LlmError>>;

/// Server-sent events decoded from a byte stream, one at a time.
pub struct SseStream {
    events: EventStream<ByteStream>,
    provider: Arc<str>,
    failed: bool,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl SseStream {
    /// Decode `bytes`, failing with [`LlmError::StreamIdle`] after `idle`
    /// without a byte.
    pub fn new(bytes: ByteStream, idle: Duration, provider: Arc<str>) -> Self {
        let guarded = with_idle_timeout(bytes, idle, provider.clone());
        SseStream {
            events: guarded.eventsource(),
            provider,
            failed: false,
        }
    }

    /// The next event; `None` at the end of the byte stream. After an error
    /// the stream is over.
    pub async fn next_event(&mut self) -> Option<Result<Event, LlmError>> {
        if self.failed {
            return None;
        }
        let item = self.events.next().await?;
        Some(item.map_err(|err| {
            self.failed = true;
            match err {
                EventStreamError::Transport(err) => err,
                EventStreamError::Utf8(err) => LlmError::Decode {
                    provider: self.provider.to_string(),
                    message: format!("event stream is not UTF-8: {err}"),
                },
                EventStreamError::Parser(err) => LlmError::Decode {
                    provider: self.provider.to_string(),
                    message: format!("event stream does not parse: {err}"),
                },
            }
        }))
    }
}

/// Wraps `bytes` so that a gap longer than `idle` ends it with `StreamIdle`.
fn with_idle_timeout(bytes: ByteStream, idle: Duration, provider: Arc<str>) -> ByteStream {
    stream::unfold(Some(bytes), move |state| {
        let provider = provider.clone();
        async move {
            let mut inner = state?;
            match tokio::time::timeout(idle, inner.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
                Ok(Some(Err(err))) => Some((Err(err), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(LlmError::StreamIdle {
                        provider: provider.to_string(),
                        after: idle,
                    }),
                    None,
                )),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> ByteStream {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn collect(mut sse: SseStream) -> Vec<Result<Event, LlmError>> {
        let mut out = Vec::new();
        while let Some(item) = sse.next_event().await {
            out.push(item);
        }
        out
    }

    #[tokio::test]
    async fn decodes_events_split_across_chunks() {
        let bytes = chunks(&[
            "event: message_start\nda",
            "ta: {\"a\":1}\n\n: comment\n\nevent: ping\r\ndata: {}\r\n\r\n",
            "data: [DONE]\n\n",
        ]);
        let events = collect(SseStream::new(bytes, Duration::from_secs(5), "t".into())).await;
        let events: Vec<Event> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].event, "message_start");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event, "ping");
        assert_eq!(events[2].event, "message");
        assert_eq!(events[2].data, "[DONE]");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_gap_fails_with_stream_idle() {
        let slow = stream::once(async { Ok(Bytes::from_static(b"data: 1\n\n")) })
            .chain(stream::once(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Bytes::from_static(b"data: 2\n\n"))
            }))
            .boxed();
        let events = collect(SseStream::new(slow, Duration::from_secs(1), "t".into())).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].as_ref().unwrap().data, "1");
        assert!(
            matches!(events[1], Err(LlmError::StreamIdle { .. })),
            "{:?}",
            events[1]
        );
    }

    #[tokio::test]
    async fn transport_error_ends_the_stream() {
        let bytes = stream::iter(vec![
            Ok(Bytes::from_static(b"data: 1\n\n")),
            Err(LlmError::Connection {
                provider: "t".into(),
                url: "u".into(),
                message: "reset".into(),
            }),
            Ok(Bytes::from_static(b"data: 2\n\n")),
        ])
        .boxed();
        let events = collect(SseStream::new(bytes, Duration::from_secs(5), "t".into())).await;
        assert_eq!(events.len(), 2);
        assert!(matches!(events[1], Err(LlmError::Connection { .. })));
    }
}
