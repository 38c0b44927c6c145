//! Per-call overhead of `HybridPlatform` against a bare HTTP request to the
//! same zero-latency mock, and 1,000 concurrent runs (wall time, peak memory).
//!
//! ```text
//! cargo bench -p hybrid-platform --bench overhead
//! ```
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `BENCH_ITERS` | 2000 | timed calls per latency row, at most |
//! | `BENCH_ROW_SECS` | 8 | time budget of a latency row: it stops early when spent |
//! | `BENCH_WARMUP` | 100 | untimed calls before each latency row (at most 1 s of them) |
//! | `BENCH_TASKS` | 1000 | concurrent runs in the concurrency rows |
//!
//! The output is a plain text table whose format the README quotes: keep it
//! stable.

// A benchmark binary reports on stdout; that is its whole purpose.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// The `hybrid` binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use hybrid_core::{Task, TaskStatus, TaskType};
use hybrid_llm::{
    AnthropicClient, AnthropicConfig, ChatEvent, ChatModel, ChatRequest, Message, OpenAiClient,
    OpenAiConfig,
};
use hybrid_platform::roles::{self, PlatformKind};
use hybrid_platform::{HybridPlatform, LlmPlatform};
use hybrid_testkit::{DEFAULT_CHUNK_SIZE, MockLlmServer, Turn};
use serde::{Deserialize, Serialize};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The mock's answer to every request: 40 words.
const ANSWER: &str = "Quantum computers store information in qubits, which can hold a blend of \
                      zero and one at once. By letting many qubits interfere, an algorithm can \
                      make wrong answers cancel out and right ones add up, which speeds up some \
                      problems like factoring and simulating molecules.";
const INPUT_TOKENS: u64 = 50;
const OUTPUT_TOKENS: u64 = 40;
const DESCRIPTION: &str = "Explain quantum computing in one short paragraph.";
const OPENAI_MODEL: &str = "gpt-4o-mini";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
const API_KEY: &str = "sk-bench";
/// Warm-up of a latency row stops after this long even if calls remain.
const WARMUP_MAX: Duration = Duration::from_secs(1);
/// Set (to a protocol name) in the child process that runs one concurrency
/// row, so each row's memory is measured in a fresh process.
const CHILD_VAR: &str = "BENCH_CONCURRENT_CHILD";

fn main() -> BenchResult<()> {
    let cfg = Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Ok(name) = std::env::var(CHILD_VAR) {
        let protocol = Protocol::from_name(&name)?;
        let row = runtime.block_on(async move {
            tokio::spawn(async move {
                let dir = tempfile::tempdir()?;
                concurrent_row(protocol, cfg.tasks, dir.path()).await
            })
            .await?
        })?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    // On a worker thread, like a server's request handler, not on the main
    // thread that `block_on` parks.
    runtime.block_on(async { tokio::spawn(run(cfg)).await? })
}

#[derive(Debug, Clone, Copy)]
struct Config {
    iters: usize,
    row_budget: Duration,
    warmup: usize,
    tasks: usize,
}

impl Config {
    fn from_env() -> BenchResult<Config> {
        Ok(Config {
            iters: env_usize("BENCH_ITERS", 2000)?,
            row_budget: Duration::from_secs(u64::try_from(env_usize("BENCH_ROW_SECS", 8)?)?),
            warmup: env_usize("BENCH_WARMUP", 100)?,
            tasks: env_usize("BENCH_TASKS", 1000)?,
        })
    }
}

fn env_usize(name: &str, default: usize) -> BenchResult<usize> {
    match std::env::var(name) {
        Ok(v) => {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|e| format!("{name}={v:?} is not a count: {e}"))?;
            if n == 0 {
                return Err(format!("{name} must be at least 1").into());
            }
            Ok(n)
        }
        Err(_) => Ok(default),
    }
}

async fn run(cfg: Config) -> BenchResult<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);

    let latency = latency_rows(cfg, dir.path()).await?;
    let openai = concurrent_in_child(Protocol::OpenAi, cfg.tasks).await?;
    let anthropic = concurrent_in_child(Protocol::Anthropic, cfg.tasks).await?;

    let concurrent = [openai, anthropic];
    print_report(cfg, cpus, &latency, &concurrent, started.elapsed());
    let failed: usize = concurrent.iter().map(|r| r.tasks - r.completed).sum();
    if failed > 0 {
        return Err(format!("{failed} concurrent runs did not complete (listed above)").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Per-call latency
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Whole,
    Streamed,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Whole => "whole",
            Mode::Streamed => "stream",
        }
    }
}

#[derive(Debug)]
struct LatencyRow {
    mode: Mode,
    path: &'static str,
    stats: Stats,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    iters: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Stats {
    fn from_samples(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let n = samples.len();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |p: usize| {
            // Nearest rank: the smallest sample with at least p% at or below it.
            let rank = (n * p).div_ceil(100).clamp(1, n.max(1));
            samples.get(rank - 1).copied().map_or(0.0, us)
        };
        let total: f64 = samples.iter().copied().map(us).sum();
        Stats {
            iters: n,
            #[allow(clippy::cast_precision_loss)]
            mean_us: if n == 0 { 0.0 } else { total / n as f64 },
            p50_us: pct(50),
            p99_us: pct(99),
        }
    }
}

/// Runs `call` up to `cfg.warmup` times untimed (at most [`WARMUP_MAX`]),
/// then up to `cfg.iters` times timed (at most `cfg.row_budget`), one at a
/// time.
async fn measure<F, Fut>(cfg: Config, mut call: F) -> BenchResult<Stats>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BenchResult<()>>,
{
    let warming = Instant::now();
    for _ in 0..cfg.warmup {
        call().await?;
        if warming.elapsed() > WARMUP_MAX {
            break;
        }
    }
    let mut samples = Vec::with_capacity(cfg.iters);
    let started = Instant::now();
    while samples.len() < cfg.iters && started.elapsed() < cfg.row_budget {
        let t = Instant::now();
        call().await?;
        samples.push(t.elapsed());
    }
    Ok(Stats::from_samples(samples))
}

async fn latency_rows(cfg: Config, dir: &Path) -> BenchResult<Vec<LatencyRow>> {
    let server = start_mock().await?;
    let url = format!("{}/chat/completions", server.openai_base_url());
    // The same messages LlmPlatform sends, so every row moves the same bytes.
    let system = hybrid_agents::presets::instructions_for(roles::role_for(
        PlatformKind::Reasoning,
        &Task::new(""),
    ));
    let bare_body = |stream: bool| {
        let mut body = serde_json::json!({
            "model": OPENAI_MODEL,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": DESCRIPTION},
            ],
        });
        if stream {
            body["stream"] = true.into();
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        serde_json::to_vec(&body)
    };
    let bodies = [bare_body(false)?, bare_body(true)?];
    // Like hybrid-llm's transport: pooled, TCP_NODELAY.
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let client = Arc::new(openai_client(&server)?);
    let request = ChatRequest::new(vec![Message::system(system), Message::user(DESCRIPTION)]);

    let mut rows = Vec::new();
    for mode in [Mode::Whole, Mode::Streamed] {
        let stream = mode == Mode::Streamed;
        let body = bodies[usize::from(stream)].clone();
        check_bare(&http, &url, &body, stream).await?;
        let stats = measure(cfg, || bare_call(&http, &url, body.clone(), stream)).await?;
        rows.push(LatencyRow {
            mode,
            path: "bare HTTP",
            stats,
        });

        let stats = measure(cfg, || {
            client_call(client.as_ref(), request.clone(), stream)
        })
        .await?;
        rows.push(LatencyRow {
            mode,
            path: "client",
            stats,
        });

        for (path, url) in [
            ("platform+mem", "sqlite::memory:".to_owned()),
            (
                "platform+file",
                sqlite_file_url(dir, &format!("latency-{}.db", mode.label())),
            ),
        ] {
            let platform = openai_platform(client.clone(), stream, &url).await?;
            let stats = measure(cfg, || platform_call(&platform)).await?;
            rows.push(LatencyRow { mode, path, stats });
        }
    }
    Ok(rows)
}

async fn bare_call(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    stream: bool,
) -> BenchResult<()> {
    let mut resp = http
        .post(url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    if stream {
        while resp.chunk().await?.is_some() {}
    } else {
        resp.bytes().await?;
    }
    Ok(())
}

/// One bare call whose answer is checked, so the baseline is known to do the
/// same work as the other rows.
async fn check_bare(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    stream: bool,
) -> BenchResult<()> {
    let text = http
        .post(url)
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let ok = if stream {
        text.trim_end().ends_with("data: [DONE]") && text.contains("\"usage\"")
    } else {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        v["choices"][0]["message"]["content"] == ANSWER
    };
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected bare response (stream: {stream}): {text:.300}").into())
    }
}

async fn client_call(model: &dyn ChatModel, request: ChatRequest, stream: bool) -> BenchResult<()> {
    let resp = if stream {
        let mut events = model.stream(request);
        let mut done = None;
        while let Some(event) = events.next().await {
            if let ChatEvent::Completed(resp) = event? {
                done = Some(resp);
            }
        }
        done.ok_or("the stream ended without a response")?
    } else {
        model.complete(request).await?
    };
    if resp.text != ANSWER || resp.usage.output_tokens != OUTPUT_TOKENS {
        return Err(format!("unexpected client response: {resp:?}").into());
    }
    Ok(())
}

async fn platform_call(platform: &HybridPlatform) -> BenchResult<()> {
    let result = platform.run(Task::new(DESCRIPTION)).await?;
    if result.status != TaskStatus::Completed || result.output != ANSWER {
        return Err(format!("unexpected platform result: {result:?}").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Protocol {
    OpenAi,
    Anthropic,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        }
    }

    fn from_name(name: &str) -> BenchResult<Protocol> {
        [Protocol::OpenAi, Protocol::Anthropic]
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("{CHILD_VAR}={name:?}: expected openai or anthropic").into())
    }
}

/// Runs [`concurrent_row`] in a fresh copy of this process (its row comes
/// back as JSON on stdout), so memory freed by earlier phases but kept by the
/// allocator does not hide this row's growth.
async fn concurrent_in_child(protocol: Protocol, tasks: usize) -> BenchResult<ConcurrentRow> {
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .env(CHILD_VAR, protocol.name())
        .env("BENCH_TASKS", tasks.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the {} concurrency run failed ({}): {stdout}",
            protocol.name(),
            out.status
        )
        .into());
    }
    let line = stdout
        .lines()
        .last()
        .ok_or("the concurrency run printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

#[derive(Debug, Serialize, Deserialize)]
struct ConcurrentRow {
    protocol: Protocol,
    tasks: usize,
    completed: usize,
    requests: usize,
    wall: Duration,
    task_p50_ms: f64,
    task_max_ms: f64,
    mem: MemDelta,
    failures: BTreeMap<String, usize>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct MemDelta {
    rss_before_kb: Option<u64>,
    peak_kb: Option<u64>,
    rss_after_kb: Option<u64>,
    /// Whether the peak was reset before the run (else it is the process's
    /// peak since start, earlier phases included).
    peak_reset: bool,
}

async fn concurrent_row(
    protocol: Protocol,
    tasks: usize,
    dir: &Path,
) -> BenchResult<ConcurrentRow> {
    // A fresh mock: it records every request, and the latency phase's
    // records should not count here.
    let server = start_mock().await?;
    let (model, name, layer, task_type): (Arc<dyn ChatModel>, _, _, _) = match protocol {
        Protocol::OpenAi => (
            Arc::new(openai_client(&server)?),
            "openai",
            PlatformKind::Reasoning,
            TaskType::Conversation,
        ),
        Protocol::Anthropic => (
            Arc::new(AnthropicClient::new(
                AnthropicConfig::new(API_KEY, ANTHROPIC_MODEL)
                    .with_base_url(server.anthropic_base_url()),
            )?),
            "claude",
            PlatformKind::Execution,
            TaskType::SystemOperation,
        ),
    };
    let store_url = sqlite_file_url(dir, &format!("concurrent-{name}.db"));
    let store = hybrid_store::connect(&store_url).await?;
    let platform = HybridPlatform::builder()
        .store(store)
        .platform(Arc::new(
            LlmPlatform::new(name, layer, model).with_streaming(true),
        ))
        .build()
        .await?;
    let task = || Task::new(DESCRIPTION).with_type(task_type);
    // One run first: migrations, the first connection, the route is right.
    let first = platform.run(task()).await?;
    if first.platform != name || first.status != TaskStatus::Completed {
        return Err(format!("warm-up run went wrong: {first:?}").into());
    }
    let requests_before = server.request_count();

    let peak_reset = reset_peak_rss();
    let before = proc_status();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let platform = platform.clone();
            let task = task();
            tokio::spawn(async move {
                let t = Instant::now();
                let r = platform.run(task).await;
                (r, t.elapsed())
            })
        })
        .collect();
    let mut completed = 0;
    let mut failures = BTreeMap::new();
    let mut durations = Vec::with_capacity(tasks);
    for handle in handles {
        match handle.await {
            Ok((Ok(result), took)) if result.status == TaskStatus::Completed => {
                completed += 1;
                durations.push(took);
            }
            Ok((Ok(result), _)) => {
                *failures
                    .entry(format!("ended {}: {:?}", result.status, result.error))
                    .or_insert(0) += 1;
            }
            Ok((Err(e), _)) => *failures.entry(error_chain(&e)).or_insert(0) += 1,
            Err(e) => *failures.entry(format!("join: {e}")).or_insert(0) += 1,
        }
    }
    let wall = t0.elapsed();
    let after = proc_status();
    durations.sort_unstable();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Ok(ConcurrentRow {
        protocol,
        tasks,
        completed,
        requests: server.request_count() - requests_before,
        wall,
        task_p50_ms: ms(durations.get(durations.len() / 2)),
        task_max_ms: ms(durations.last()),
        mem: MemDelta {
            rss_before_kb: before.rss_kb,
            peak_kb: after.hwm_kb,
            rss_after_kb: after.rss_kb,
            peak_reset,
        },
        failures,
    })
}

fn error_chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        // Many errors already print their source; name each cause once.
        let cause_text = cause.to_string();
        if !s.contains(&cause_text) {
            s.push_str(": ");
            s.push_str(&cause_text);
        }
        source = cause.source();
    }
    s
}

#[derive(Debug, Default, Clone, Copy)]
struct ProcStatus {
    rss_kb: Option<u64>,
    hwm_kb: Option<u64>,
}

/// `VmRSS` and `VmHWM` (peak RSS) of this process, from `/proc/self/status`.
fn proc_status() -> ProcStatus {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return ProcStatus::default();
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    ProcStatus {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    }
}

/// Resets `VmHWM` to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

async fn start_mock() -> BenchResult<MockLlmServer> {
    let server = MockLlmServer::start().await?;
    server.set_default(Some(
        Turn::text(ANSWER)
            .with_usage(INPUT_TOKENS, OUTPUT_TOKENS)
            .into(),
    ));
    Ok(server)
}

fn openai_client(server: &MockLlmServer) -> BenchResult<OpenAiClient> {
    Ok(OpenAiClient::new(
        OpenAiConfig::new(API_KEY, OPENAI_MODEL).with_base_url(server.openai_base_url()),
    )?)
}

async fn openai_platform(
    client: Arc<OpenAiClient>,
    stream: bool,
    store_url: &str,
) -> BenchResult<HybridPlatform> {
    let store = hybrid_store::connect(store_url).await?;
    Ok(HybridPlatform::builder()
        .store(store)
        .platform(Arc::new(
            LlmPlatform::new("openai", PlatformKind::Reasoning, client).with_streaming(stream),
        ))
        .build()
        .await?)
}

fn sqlite_file_url(dir: &Path, file: &str) -> String {
    // Absolute path: `sqlite://` + `/tmp/...`.
    format!("sqlite://{}", dir.join(file).display())
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn print_report(
    cfg: Config,
    cpus: usize,
    latency: &[LatencyRow],
    concurrent: &[ConcurrentRow],
    total: Duration,
) {
    let chunks = ANSWER.chars().count().div_ceil(DEFAULT_CHUNK_SIZE);
    println!("HybridPlatform overhead benchmark (benches/overhead.rs)");
    println!(
        "machine: {cpus} CPUs (std::thread::available_parallelism), tokio multi-thread runtime, \
         {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "mock: in-process MockLlmServer, zero latency, {}-word answer ({} chars; streamed as \
         {chunks} SSE chunks), usage {INPUT_TOKENS}/{OUTPUT_TOKENS}",
        ANSWER.split_whitespace().count(),
        ANSWER.len()
    );
    println!();
    println!(
        "Per-call latency, one call at a time, OpenAI protocol: up to {} calls or {} s per row \
         (BENCH_ITERS, BENCH_ROW_SECS), after up to {} warm-up calls (BENCH_WARMUP)",
        cfg.iters,
        cfg.row_budget.as_secs(),
        cfg.warmup
    );
    println!(
        "  bare HTTP      reqwest POST (pooled, TCP_NODELAY), whole body read / stream read to the end"
    );
    println!(
        "  client         OpenAiClient::complete / ::stream (build request, send, decode JSON / SSE)"
    );
    println!(
        "  platform+mem   HybridPlatform::run -> LlmPlatform -> client, store sqlite::memory:"
    );
    println!("  platform+file  same, store a SQLite file (WAL, synchronous=NORMAL) in a temp dir");
    println!("  overhead       mean(row) - mean(bare HTTP) of the same mode");
    println!();
    println!(
        "{:<7} {:<14} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "mode", "path", "iters", "mean us", "p50 us", "p99 us", "overhead"
    );
    for row in latency {
        let bare = latency
            .iter()
            .find(|r| r.mode == row.mode && r.path == "bare HTTP")
            .map_or(0.0, |r| r.stats.mean_us);
        let s = row.stats;
        println!(
            "{:<7} {:<14} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>+10.1}",
            row.mode.label(),
            row.path,
            s.iters,
            s.mean_us,
            s.p50_us,
            s.p99_us,
            s.mean_us - bare
        );
    }
    let stalled = latency
        .iter()
        .any(|r| r.mode == Mode::Streamed && r.path == "bare HTTP" && r.stats.p50_us > 30_000.0);
    if stalled {
        println!(
            "note: streamed calls to the bare mock take > 30 ms: a delayed-ACK stall \
             (the mock's sockets lack TCP_NODELAY), not work; every stream row pays it \
             and stream overheads are within its noise"
        );
    }
    println!();
    println!(
        "Concurrent runs: {} x HybridPlatform::run spawned at once, all awaited; streaming; \
         SQLite file store",
        cfg.tasks
    );
    println!("  each row runs in a fresh process (this binary again) after one warm-up run;");
    println!("  RSS0 = VmRSS before; peak = VmHWM after, reset just before; +peak = peak - RSS0;");
    println!("  the mock server (which records every request) runs in that same process");
    println!();
    println!(
        "{:<9} {:>6} {:>9} {:>8} {:>9} {:>8} {:>11} {:>11} {:>10} {:>10} {:>10}",
        "protocol",
        "tasks",
        "completed",
        "requests",
        "wall ms",
        "tasks/s",
        "task p50 ms",
        "task max ms",
        "RSS0 MiB",
        "peak MiB",
        "+peak MiB"
    );
    let mib = |kb: Option<u64>| {
        #[allow(clippy::cast_precision_loss)]
        kb.map_or_else(
            || "n/a".to_owned(),
            |kb| format!("{:.1}", kb as f64 / 1024.0),
        )
    };
    for row in concurrent {
        let wall_s = row.wall.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = if wall_s > 0.0 {
            row.completed as f64 / wall_s
        } else {
            0.0
        };
        let grew = match (row.mem.peak_kb, row.mem.rss_before_kb) {
            (Some(p), Some(b)) => Some(p.saturating_sub(b)),
            _ => None,
        };
        println!(
            "{:<9} {:>6} {:>9} {:>8} {:>9.1} {:>8.0} {:>11.1} {:>11.1} {:>10} {:>10} {:>10}",
            row.protocol.name(),
            row.tasks,
            row.completed,
            row.requests,
            wall_s * 1e3,
            rate,
            row.task_p50_ms,
            row.task_max_ms,
            mib(row.mem.rss_before_kb),
            mib(row.mem.peak_kb),
            mib(grew),
        );
    }
    for row in concurrent {
        if !row.mem.peak_reset {
            println!("note: could not reset VmHWM; peak includes earlier phases");
        }
        let after = mib(row.mem.rss_after_kb);
        if row.completed != row.tasks || !row.failures.is_empty() {
            println!(
                "FAILED ({}): {} of {} runs did not complete:",
                row.protocol.name(),
                row.tasks - row.completed,
                row.tasks
            );
            for (error, count) in &row.failures {
                println!("  {count} x {error}");
            }
        } else {
            println!(
                "{}: all {} runs completed; RSS after the run {after} MiB",
                row.protocol.name(),
                row.tasks
            );
        }
    }
    println!();
    println!("total bench time {:.1} s", total.as_secs_f64());
}
