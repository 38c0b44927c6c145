//! Faults against the mock server, for each provider, whole and streamed:
//! what is retried (the recorded request count proves it), what is not, and
//! which typed error comes out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use hybrid_llm::{ChatEvent, LlmError, TransportConfig};
use hybrid_testkit::{Fault, MockLlmServer, Turn};
use serde_json::json;

use crate::common::{Mode, Provider, ask, client, fast_transport, run};

fn success() -> Turn {
    Turn::text("recovered").with_usage(3, 1)
}

async fn rate_limited_then_success(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    // retry-after-ms (10 ms) wins over retry-after (seconds); the transport
    // caps waits at 2 s, so a slow test would mean the header was ignored.
    server.enqueue(Fault::RateLimited {
        retry_after_secs: Some(30),
        retry_after_ms: Some(10),
    });
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let started = Instant::now();
    let response = run(&*model, ask("hi"), mode).await.result.unwrap();
    assert_eq!(response.text, "recovered");
    assert_eq!(server.request_count(), 2, "one retry");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
}
each_provider_and_mode!(rate_limited_then_success);

async fn rate_limit_exhausted(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    for _ in 0..3 {
        server.enqueue(Fault::RateLimited {
            retry_after_secs: None,
            retry_after_ms: Some(5),
        });
    }
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(5)));
    assert_eq!(server.request_count(), 3, "max_attempts = 3");
}
each_provider_and_mode!(rate_limit_exhausted);

async fn server_error_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::ServerError);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "recovered"
    );
    assert_eq!(server.request_count(), 2);
}
each_provider_and_mode!(server_error_retried);

async fn overloaded_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Overloaded);
    server.enqueue(Fault::Overloaded);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "recovered"
    );
    assert_eq!(server.request_count(), 3);
}
each_provider_and_mode!(overloaded_retried);

async fn attempts_exhausted(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    for _ in 0..3 {
        server.enqueue(Fault::Overloaded);
    }
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    let status = if provider == Provider::OpenAi {
        503
    } else {
        529
    };
    assert!(
        matches!(err, LlmError::Overloaded { status: s, .. } if s == status),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.queued_replies(), 1, "the success was never reached");
}
each_provider_and_mode!(attempts_exhausted);

async fn context_too_long_not_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::ContextTooLong);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(matches!(err, LlmError::ContextTooLong { .. }), "{err:?}");
    assert_eq!(server.request_count(), 1);
}
each_provider_and_mode!(context_too_long_not_retried);

async fn unauthorized_not_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Unauthorized);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(
        matches!(err, LlmError::Authentication { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 1);
    // A key the server does not accept: the same, without a script.
    server.require_api_key(Some("another-key".into()));
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(matches!(err, LlmError::Authentication { .. }), "{err:?}");
    assert_eq!(server.request_count(), 2);
}
each_provider_and_mode!(unauthorized_not_retried);

async fn bad_request_not_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::BadRequest("temperature: must be <= 2".into()));
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(
        matches!(err, LlmError::InvalidRequest { status: 400, ref message, .. } if message.contains("temperature")),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 1);
}
each_provider_and_mode!(bad_request_not_retried);

async fn malformed_json_is_decode(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MalformedJson);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert!(matches!(err, LlmError::Decode { .. }), "{err:?}");
    assert_eq!(server.request_count(), 1);
}
each_provider_and_mode!(malformed_json_is_decode);

async fn cut_stream(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::CutStream { after_events: 4 });
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let outcome = run(&*model, ask("hi"), mode).await;
    match mode {
        Mode::Stream => {
            // Output was already yielded: the stream ends with an error, no retry.
            let err = outcome.result.unwrap_err();
            assert!(matches!(err, LlmError::StreamInterrupted { .. }), "{err:?}");
            assert!(matches!(
                outcome.events.first(),
                Some(ChatEvent::Started { .. })
            ));
            assert!(
                outcome
                    .events
                    .iter()
                    .any(|e| matches!(e, ChatEvent::TextDelta(_)))
            );
            assert_eq!(server.request_count(), 1);
        }
        Mode::Complete => {
            // A body cut mid-way is a dropped connection: retried.
            assert_eq!(outcome.result.unwrap().text, "recovered");
            assert_eq!(server.request_count(), 2);
        }
    }
}
each_provider_and_mode!(cut_stream);

async fn stream_cut_before_first_event_is_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::CutStream { after_events: 0 });
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "recovered"
    );
    assert_eq!(server.request_count(), 2);
}
each_provider_and_mode!(stream_cut_before_first_event_is_retried);

async fn mid_stream_error(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::MidStreamError);
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    let outcome = run(&*model, ask("hi"), mode).await;
    match (mode, provider) {
        (Mode::Stream, Provider::OpenAi) => {
            let err = outcome.result.unwrap_err();
            assert!(
                matches!(err, LlmError::StreamError { ref kind, .. } if kind == "server_error"),
                "{err:?}"
            );
            assert_eq!(server.request_count(), 1);
        }
        (Mode::Stream, Provider::Anthropic) => {
            let err = outcome.result.unwrap_err();
            assert!(matches!(err, LlmError::Overloaded { .. }), "{err:?}");
            assert!(
                outcome
                    .events
                    .iter()
                    .any(|e| matches!(e, ChatEvent::TextDelta(_)))
            );
            assert_eq!(server.request_count(), 1);
        }
        (Mode::Complete, _) => {
            // Not streamed, the same failure is an HTTP 500 / 529: retried.
            assert_eq!(outcome.result.unwrap().text, "recovered");
            assert_eq!(server.request_count(), 2);
        }
    }
}
each_provider_and_mode!(mid_stream_error);

fn short_request_timeout() -> TransportConfig {
    let mut transport = fast_transport();
    transport.request_timeout = Duration::from_millis(200);
    transport.retry.max_attempts = 1;
    transport
}

async fn slow_first_byte_times_out(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(success().with_first_byte_delay(Duration::from_secs(2)));
    let model = client(provider, &server, short_request_timeout());
    let started = Instant::now();
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    assert_eq!(
        err,
        LlmError::Timeout {
            provider: model.provider().into(),
            after: Duration::from_millis(200)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.request_count(), 1);
}
each_provider_and_mode!(slow_first_byte_times_out);

async fn timeout_is_retried(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(success().with_first_byte_delay(Duration::from_secs(2)));
    server.enqueue(success());
    let mut transport = short_request_timeout();
    transport.retry.max_attempts = 2;
    let model = client(provider, &server, transport);
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "recovered"
    );
    assert_eq!(server.request_count(), 2);
}
each_provider_and_mode!(timeout_is_retried);

async fn stream_idle(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(success().with_first_byte_delay(Duration::from_millis(800)));
    let mut transport = fast_transport();
    transport.stream_idle_timeout = Duration::from_millis(150);
    let model = client(provider, &server, transport);
    let outcome = run(&*model, ask("hi"), mode).await;
    match mode {
        Mode::Stream => {
            let err = outcome.result.unwrap_err();
            assert!(
                matches!(err, LlmError::StreamIdle { after, .. } if after == Duration::from_millis(150)),
                "{err:?}"
            );
            assert_eq!(server.request_count(), 1, "idle streams are not retried");
        }
        // The idle timeout bounds streams only; the request timeout is 5 s.
        Mode::Complete => assert_eq!(outcome.result.unwrap().text, "recovered"),
    }
}
each_provider_and_mode!(stream_idle);

async fn status_without_json_body(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    let html = format!("<html><body>{}</body></html>", "Bad gateway. ".repeat(40));
    server.enqueue(Fault::Status {
        status: 502,
        body: json!(html),
        headers: vec![],
    });
    server.enqueue(Fault::Status {
        status: 404,
        body: json!("no such route"),
        headers: vec![],
    });
    let model = client(provider, &server, fast_transport());
    let err = run(&*model, ask("hi"), mode).await.result.unwrap_err();
    let LlmError::InvalidRequest {
        status: 404,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(message, "no such route");
    assert_eq!(server.request_count(), 2, "502 retried, 404 not");
    server.enqueue(Fault::Status {
        status: 502,
        body: json!(html),
        headers: vec![],
    });
    let mut transport = fast_transport();
    transport.retry.max_attempts = 1;
    let once = client(provider, &server, transport);
    let err = run(&*once, ask("hi"), mode).await.result.unwrap_err();
    let LlmError::Server {
        status: 502,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(message.chars().count(), 200);
    assert!(message.starts_with("<html><body>Bad gateway."));
}
each_provider_and_mode!(status_without_json_body);

async fn retry_after_header_seconds(provider: Provider, mode: Mode) {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Status {
        status: 503,
        body: json!({"error": {"message": "try later", "type": "server_error"}}),
        headers: vec![("retry-after".into(), "0".into())],
    });
    server.enqueue(success());
    let model = client(provider, &server, fast_transport());
    assert_eq!(
        run(&*model, ask("hi"), mode).await.result.unwrap().text,
        "recovered"
    );
    assert_eq!(server.request_count(), 2);
}
each_provider_and_mode!(retry_after_header_seconds);

#[tokio::test]
async fn openai_insufficient_quota_is_not_retried() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                               "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        headers: vec![],
    });
    server.enqueue(success());
    let model = client(Provider::OpenAi, &server, fast_transport());
    let err = model.complete(ask("hi")).await.unwrap_err();
    assert!(
        matches!(err, LlmError::InvalidRequest { status: 429, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn anthropic_request_too_large_is_not_retried() {
    let server = MockLlmServer::start().await.unwrap();
    server.enqueue(Fault::Status {
        status: 413,
        body: json!({"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}),
        headers: vec![],
    });
    let model = client(Provider::Anthropic, &server, fast_transport());
    let err = model.complete(ask("hi")).await.unwrap_err();
    assert!(
        matches!(err, LlmError::InvalidRequest { status: 413, .. }),
        "{err:?}"
    );
    assert_eq!(server.request_count(), 1);
}
