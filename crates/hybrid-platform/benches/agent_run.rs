//! An agent run — model → tool call → model — through `HybridPlatform`, against
//! the same two requests made bare, on a zero-latency mock: the workload agent
//! frameworks (the OpenAI Agents SDK, LangGraph) are compared on.
//!
//! ```text
//! cargo bench -p hybrid-platform --bench agent_run
//! ```
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `BENCH_ITERS` | 1000 | timed runs per latency row, at most |
//! | `BENCH_ROW_SECS` | 8 | time budget of a latency row |
//! | `BENCH_TASKS` | 1000 | concurrent runs in the concurrency rows |
//! | `BENCH_MANY` | 10000 | concurrent runs in the memory rows (HTTP/1.1, then HTTP/2 for bare and SQLite) |
//! | `BENCH_RUNTIME` | `multi_thread` | the Tokio runtime: `multi_thread` (2 workers here) or `current_thread` (no wake-ups across threads: the CPU cost alone) |
//! | `BENCH_POSTGRES_URL` | `postgres://postgres@127.0.0.1:5432/test` | the PostgreSQL rows' database (`off`: skip them) |
//! | `BENCH_MODE` | `whole` | `whole`: whole responses on both sides; `stream`: both stream (`"stream": true`; the bare run decodes the SSE events itself) |
//! | `BENCH_ONLY` | unset | one latency row by its label (`platform+memory` …), alone and without the concurrency rows: for a profiler |
//!
//! Each run: the Anthropic protocol, the executor on `claude` with `read_file`;
//! the model asks for `read_file` of `app.yaml`, gets the file, answers. The
//! bare run makes the same two `POST /v1/messages` (same tools, same
//! messages, whole or streamed as the platform's) and reads the file itself. Overhead = mean(platform) −
//! mean(bare). Every platform step is committed before the next (the store's
//! durability is not relaxed for the bench).

// A benchmark binary reports on stdout; that is its whole purpose.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_core::{Task, TaskStatus, TaskType};
use hybrid_llm::{AnthropicClient, AnthropicConfig};
use hybrid_platform::roles::PlatformKind;
use hybrid_platform::{HybridPlatform, LlmPlatform, RunOptions};
use hybrid_testkit::{MockLlmServer, Turn};
use hybrid_tools::{ToolRegistry, ToolsConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `hybrid` binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const ANSWER: &str = "app.yaml sets the service's port to 8080.";
const FILE: &str = "name: api\nport: 8080\nreplicas: 3\n";
const DESCRIPTION: &str = "Read app.yaml and report the port it sets.";
const MODEL: &str = "claude-sonnet-4-5";
const API_KEY: &str = "sk-ant-bench";
const CHILD_VAR: &str = "BENCH_AGENT_CHILD";

/// Whether both sides stream (`BENCH_MODE=stream`) or take whole responses.
fn streamed() -> BenchResult<bool> {
    match std::env::var("BENCH_MODE").as_deref() {
        Ok("whole") | Err(_) => Ok(false),
        Ok("stream") => Ok(true),
        Ok(other) => Err(format!("BENCH_MODE={other:?}: expected whole or stream").into()),
    }
}

fn main() -> BenchResult<()> {
    let runtime = match std::env::var("BENCH_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Ok("multi_thread") | Err(_) => tokio::runtime::Builder::new_multi_thread(),
        Ok(other) => {
            return Err(format!(
                "BENCH_RUNTIME={other:?}: expected multi_thread or current_thread"
            )
            .into());
        }
    }
    .enable_all()
    .build()?;
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        let spec: ChildSpec = serde_json::from_str(&spec)?;
        let row = runtime.block_on(async move { tokio::spawn(concurrent_row(spec)).await? })?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    runtime.block_on(async { tokio::spawn(run()).await? })
}

fn env_usize(name: &str, default: usize) -> BenchResult<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v.trim().parse().map_err(|e| format!("{name}={v:?}: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    (url != "off").then_some(url)
}

/// Where a row keeps its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum StoreKind {
    /// No platform: the bare requests.
    Bare,
    /// `sqlite::memory:`: the platform's own cost, without a file's commits.
    SqliteMemory,
    SqliteFile,
    Postgres,
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            StoreKind::Bare => "bare HTTP",
            StoreKind::SqliteMemory => "platform+memory",
            StoreKind::SqliteFile => "platform+sqlite",
            StoreKind::Postgres => "platform+postgres",
        }
    }
}

async fn run() -> BenchResult<()> {
    let iters = env_usize("BENCH_ITERS", 1000)?;
    let budget = Duration::from_secs(u64::try_from(env_usize("BENCH_ROW_SECS", 8)?)?);
    let tasks = env_usize("BENCH_TASKS", 1000)?;
    let many = env_usize("BENCH_MANY", 10_000)?;
    let mut kinds = vec![StoreKind::Bare, StoreKind::SqliteFile];
    if postgres_url().is_some() {
        kinds.push(StoreKind::Postgres);
    }
    let mut latency_kinds = kinds.clone();
    latency_kinds.insert(1, StoreKind::SqliteMemory);
    let only = std::env::var("BENCH_ONLY").ok();
    if let Some(label) = &only {
        latency_kinds.retain(|kind| kind.label() == label);
        if latency_kinds.is_empty() {
            return Err(format!("BENCH_ONLY={label:?}: no latency row has that label").into());
        }
    }

    let mock = mock().await?;
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.yaml"), FILE)?;
    let mut latency = Vec::new();
    for &kind in &latency_kinds {
        let runner = Runner::new(
            kind,
            &mock.anthropic_base_url(),
            work.path(),
            "latency",
            false,
        )
        .await?;
        runner.once().await?; // migrations, first connections, and a check
        let mut samples = Vec::with_capacity(iters);
        let started = Instant::now();
        while samples.len() < iters && started.elapsed() < budget {
            let t = Instant::now();
            runner.once().await?;
            samples.push(t.elapsed());
        }
        runner.close().await?;
        latency.push((kind, Stats::of(samples)));
    }

    let mut concurrent = Vec::new();
    let mock_url = mock.anthropic_base_url();
    if only.is_some() {
        report(&latency, &concurrent);
        return Ok(());
    }
    for &kind in &kinds {
        concurrent.push(
            in_child(ChildSpec {
                kind,
                tasks,
                mock_url: mock_url.clone(),
                http2: false,
            })
            .await?,
        );
    }
    concurrent.push(
        in_child(ChildSpec {
            kind: StoreKind::SqliteFile,
            tasks: many,
            mock_url: mock_url.clone(),
            http2: false,
        })
        .await?,
    );
    // The same over HTTP/2 (h2c here; what the providers' https endpoints
    // negotiate): every request in flight on one connection.
    for kind in [StoreKind::Bare, StoreKind::SqliteFile] {
        concurrent.push(
            in_child(ChildSpec {
                kind,
                tasks: many,
                mock_url: mock_url.clone(),
                http2: true,
            })
            .await?,
        );
    }
    report(&latency, &concurrent);
    let failed: usize = concurrent.iter().map(|r| r.tasks - r.completed).sum();
    if failed > 0 {
        return Err(format!("{failed} concurrent runs did not complete").into());
    }
    Ok(())
}

/// The mock: a tool call until the last message holds a tool result, then the answer.
async fn mock() -> BenchResult<MockLlmServer> {
    let mock = MockLlmServer::start().await?;
    mock.keep_requests(false);
    mock.set_responder(|body: &Value| {
        let last = body["messages"].as_array()?.last()?;
        let answered = last["content"]
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
        let turn = if answered {
            Turn::text(ANSWER).with_usage(400, 12)
        } else {
            Turn::tool_call("read_file", json!({"path": "app.yaml"})).with_usage(350, 20)
        };
        Some(turn.into())
    });
    Ok(mock)
}

/// One way of making an agent run.
enum Runner {
    Bare {
        http: reqwest::Client,
        url: String,
        tools: Value,
        workdir: PathBuf,
        stream: bool,
    },
    Platform {
        platform: HybridPlatform,
        workdir: PathBuf,
        schema: Option<(String, String)>,
    },
}

impl Runner {
    async fn new(
        kind: StoreKind,
        mock_url: &str,
        workdir: &Path,
        tag: &str,
        http2: bool,
    ) -> BenchResult<Runner> {
        let stream = streamed()?;
        let read_file = ToolRegistry::builtin(&ToolsConfig::default())
            .get("read_file")
            .ok_or("no read_file tool")?;
        let (store_url, schema) = match kind {
            StoreKind::Bare => {
                let spec = read_file.spec();
                return Ok(Runner::Bare {
                    http: if http2 {
                        reqwest::Client::builder()
                            .tcp_nodelay(true)
                            .http2_prior_knowledge()
                            .build()?
                    } else {
                        reqwest::Client::builder().tcp_nodelay(true).build()?
                    },
                    url: format!("{mock_url}/v1/messages"),
                    tools: json!([{
                        "name": spec.name,
                        "description": spec.description,
                        "input_schema": spec.parameters,
                    }]),
                    workdir: workdir.to_path_buf(),
                    stream,
                });
            }
            StoreKind::SqliteMemory => ("sqlite::memory:".to_owned(), None),
            StoreKind::SqliteFile => (
                format!("sqlite://{}", workdir.join(format!("{tag}.db")).display()),
                None,
            ),
            StoreKind::Postgres => {
                let url = postgres_url().ok_or("no PostgreSQL")?;
                (url, Some(format!("bench_{tag}_{}", std::process::id())))
            }
        };
        let store: Arc<dyn hybrid_store::Store> = match &schema {
            Some(name) => Arc::new(hybrid_store::RedactingStore::new(
                Arc::new(hybrid_store::connect_postgres_in_schema(&store_url, name).await?),
                hybrid_secrets::Redactor::default(),
            )),
            None => hybrid_store::connect(&store_url).await?,
        };
        let client = AnthropicClient::new(
            AnthropicConfig::new(API_KEY, MODEL)
                .with_base_url(mock_url)
                .with_transport(hybrid_llm::TransportConfig {
                    http2_prior_knowledge: http2,
                    ..Default::default()
                }),
        )?;
        let platform = HybridPlatform::builder()
            .store(store)
            .platform(Arc::new(
                LlmPlatform::new("claude", PlatformKind::Execution, Arc::new(client))
                    .with_streaming(stream)
                    .with_tools(vec![read_file]),
            ))
            .build()
            .await?;
        Ok(Runner::Platform {
            platform,
            workdir: workdir.to_path_buf(),
            schema: schema.map(|s| (store_url, s)),
        })
    }

    /// One agent run, checked.
    async fn once(&self) -> BenchResult<()> {
        match self {
            Runner::Bare {
                http,
                url,
                tools,
                workdir,
                stream,
            } => bare_run(http, url, tools, workdir, *stream).await,
            Runner::Platform {
                platform, workdir, ..
            } => {
                let task = Task::new(DESCRIPTION).with_type(TaskType::SystemOperation);
                let options = RunOptions {
                    workdir: Some(workdir.clone()),
                    ..RunOptions::default()
                };
                let result = platform.run_with(task, options).await?;
                let stage = result.stages.values().next().ok_or("no stage")?;
                let read = stage.tool_calls.first().and_then(|c| c.output.as_deref());
                if result.status != TaskStatus::Completed
                    || result.output != ANSWER
                    || !read.is_some_and(|o| o.contains("port: 8080"))
                {
                    return Err(format!("unexpected result: {result:?}").into());
                }
                Ok(())
            }
        }
    }

    async fn close(self) -> BenchResult<()> {
        if let Runner::Platform {
            schema: Some((url, schema)),
            ..
        } = self
        {
            hybrid_store::drop_postgres_schema(&url, &schema).await?;
        }
        Ok(())
    }
}

/// The two requests an agent run makes, and the tool call between them, by hand.
async fn bare_run(
    http: &reqwest::Client,
    url: &str,
    tools: &Value,
    workdir: &Path,
    stream: bool,
) -> BenchResult<()> {
    let system = "You are the executor. Use the tools to act, then answer.";
    let mut messages = vec![json!({"role": "user", "content": DESCRIPTION})];
    let first = post_messages(http, url, system, tools, &messages, stream).await?;
    let call = first["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .ok_or("no tool_use")?
        .clone();
    let path = call["input"]["path"].as_str().ok_or("no path")?;
    let content = std::fs::read_to_string(workdir.join(path))?;
    messages.push(json!({"role": "assistant", "content": first["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": content}
    ]}));
    let second = post_messages(http, url, system, tools, &messages, stream).await?;
    if second["content"][0]["text"] != ANSWER {
        return Err(format!("unexpected bare answer: {second}").into());
    }
    Ok(())
}

/// One `POST /v1/messages`: the response's message, whole or built from its stream.
async fn post_messages(
    http: &reqwest::Client,
    url: &str,
    system: &str,
    tools: &Value,
    messages: &[Value],
    stream: bool,
) -> BenchResult<Value> {
    let response = http
        .post(url)
        .header("x-api-key", API_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": MODEL,
            "max_tokens": 4096,
            "system": system,
            "tools": tools,
            "messages": messages,
            "stream": stream,
        }))
        .send()
        .await?
        .error_for_status()?;
    if stream {
        message_of_sse(&response.text().await?)
    } else {
        Ok(response.json::<Value>().await?)
    }
}

/// The message a streamed Messages response builds, from its SSE events, as a
/// bare client would: text deltas appended, a tool call's JSON pieces joined
/// and parsed.
fn message_of_sse(body: &str) -> BenchResult<Value> {
    let mut content: Vec<Value> = Vec::new();
    let mut partial_json: Vec<String> = Vec::new();
    for data in body.lines().filter_map(|line| line.strip_prefix("data:")) {
        let event: Value = serde_json::from_str(data.trim_start())?;
        let index = event["index"]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok());
        match (event["type"].as_str(), index) {
            (Some("content_block_start"), Some(i)) if i == content.len() => {
                content.push(event["content_block"].clone());
                partial_json.push(String::new());
            }
            (Some("content_block_delta"), Some(i)) => {
                let delta = &event["delta"];
                match (
                    delta["type"].as_str(),
                    content.get_mut(i),
                    partial_json.get_mut(i),
                ) {
                    (Some("text_delta"), Some(block), _) => {
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap_or_default(),
                            delta["text"].as_str().unwrap_or_default()
                        );
                        block["text"] = text.into();
                    }
                    (Some("input_json_delta"), _, Some(json)) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            (Some("content_block_stop"), Some(i)) => {
                if let (Some(block), Some(json)) = (content.get_mut(i), partial_json.get(i))
                    && block["type"] == "tool_use"
                    && !json.is_empty()
                {
                    block["input"] = serde_json::from_str(json)?;
                }
            }
            (Some("error"), _) => return Err(format!("stream error: {event}").into()),
            _ => {}
        }
    }
    Ok(json!({ "content": content }))
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    iters: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Stats {
    #[allow(clippy::cast_precision_loss)]
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let n = samples.len().max(1);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |p: usize| {
            samples
                .get((n * p).div_ceil(100).clamp(1, n) - 1)
                .map_or(0.0, |d| us(*d))
        };
        Stats {
            iters: samples.len(),
            mean_us: samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64,
            p50_us: pct(50),
            p99_us: pct(99),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildSpec {
    kind: StoreKind,
    tasks: usize,
    /// The parent's mock server: the child's memory and file descriptors
    /// are the platform's alone.
    mock_url: String,
    /// HTTP/2 from the first byte (h2c) instead of HTTP/1.1.
    http2: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConcurrentRow {
    kind: StoreKind,
    http2: bool,
    tasks: usize,
    completed: usize,
    wall_ms: f64,
    p50_ms: f64,
    peak_mib: Option<f64>,
    rss0_mib: Option<f64>,
    first_error: Option<String>,
}

/// Runs a concurrency row in a fresh copy of this process, so its peak RSS is its own.
async fn in_child(spec: ChildSpec) -> BenchResult<ConcurrentRow> {
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .env(CHILD_VAR, serde_json::to_string(&spec)?)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!(
            "the {:?} x{} row failed ({}): {}",
            spec.kind,
            spec.tasks,
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(
        stdout.lines().last().ok_or("no row")?,
    )?)
}

async fn concurrent_row(spec: ChildSpec) -> BenchResult<ConcurrentRow> {
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("app.yaml"), FILE)?;
    let runner = Arc::new(
        Runner::new(
            spec.kind,
            &spec.mock_url,
            work.path(),
            "concurrent",
            spec.http2,
        )
        .await?,
    );
    runner.once().await?;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = proc_kb("VmRSS:");
    let started = Instant::now();
    let handles: Vec<_> = (0..spec.tasks)
        .map(|_| {
            let runner = runner.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                runner.once().await.map(|()| t.elapsed())
            })
        })
        .collect();
    let mut durations = Vec::with_capacity(spec.tasks);
    let mut first_error = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(took)) => durations.push(took),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let wall = started.elapsed();
    let peak = proc_kb("VmHWM:");
    durations.sort_unstable();
    let completed = durations.len();
    if let Ok(runner) = Arc::try_unwrap(runner) {
        runner.close().await?;
    }
    #[allow(clippy::cast_precision_loss)]
    let mib = |kb: Option<u64>| kb.map(|k| k as f64 / 1024.0);
    Ok(ConcurrentRow {
        kind: spec.kind,
        http2: spec.http2,
        tasks: spec.tasks,
        completed,
        wall_ms: wall.as_secs_f64() * 1e3,
        p50_ms: durations
            .get(completed / 2)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3),
        peak_mib: mib(peak),
        rss0_mib: mib(rss0),
        first_error,
    })
}

fn proc_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn report(latency: &[(StoreKind, Stats)], concurrent: &[ConcurrentRow]) {
    println!("HybridPlatform agent-run benchmark (benches/agent_run.rs)");
    println!(
        "one run = model call -> read_file tool call -> model call, Anthropic protocol, \
         zero-latency mock, {} responses on both sides; {} CPUs",
        if streamed().unwrap_or(false) {
            "streamed"
        } else {
            "whole"
        },
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!();
    println!("Per-run latency, one run at a time");
    println!(
        "{:<18} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "path", "runs", "mean us", "p50 us", "p99 us", "overhead"
    );
    let bare = latency
        .iter()
        .find(|(k, _)| *k == StoreKind::Bare)
        .map_or(0.0, |(_, s)| s.mean_us);
    for (kind, s) in latency {
        println!(
            "{:<18} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>+10.1}",
            kind.label(),
            s.iters,
            s.mean_us,
            s.p50_us,
            s.p99_us,
            s.mean_us - bare
        );
    }
    println!();
    println!(
        "Concurrent runs, all spawned at once (each row in a fresh process, the mock in this one; peak = VmHWM)"
    );
    println!(
        "{:<18} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "path",
        "runs",
        "completed",
        "wall ms",
        "runs/s",
        "p50 ms",
        "RSS0 MiB",
        "peak MiB",
        "x bare"
    );
    for row in concurrent {
        let floor = concurrent
            .iter()
            .find(|r| r.kind == StoreKind::Bare && r.tasks == row.tasks && r.http2 == row.http2)
            .map(|r| r.wall_ms);
        #[allow(clippy::cast_precision_loss)]
        let rate = row.completed as f64 / (row.wall_ms / 1e3).max(1e-9);
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{:<18} {:>6} {:>9} {:>9.1} {:>8.0} {:>9.1} {:>9} {:>9} {:>8}",
            if row.http2 {
                format!("{} h2", row.kind.label())
            } else {
                row.kind.label().to_owned()
            },
            row.tasks,
            row.completed,
            row.wall_ms,
            rate,
            row.p50_ms,
            fmt(row.rss0_mib),
            fmt(row.peak_mib),
            floor.map_or_else(|| "-".to_owned(), |f| format!("{:.2}", row.wall_ms / f)),
        );
        if let Some(e) = &row.first_error {
            println!("  first error: {e}");
        }
    }
}
