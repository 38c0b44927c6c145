//! `hybrid-demo-service`: a tiny HTTP service with a fault, for end-to-end tests
//! (see `hybrid_testkit::fixtures::ServiceFixture`). Standard library only, so the fixture
//! can also compile this file with a bare `rustc` when the binary target was not built.
//!
//! ```text
//! hybrid-demo-service --dir DIR [--port N] [--healthy] [--restarted]
//! hybrid-demo-service probe PORT      # exit 0: /health says 200, 1: it does not, 2: no network
//! ```
//!
//! The service listens on `127.0.0.1:PORT` (0 = any free port) and keeps its files in DIR:
//!
//! | file | content |
//! | --- | --- |
//! | `service.log` | log lines, appended (`2025-01-01T12:00:00.000Z ERROR pool: …`) |
//! | `service.port` | the port |
//! | `service.pid` | the pid of the current process |
//! | `service.state` | `degraded PID` or `ok PID`, written once the port is listening |
//! | `restart.request` | created by `restart-service.sh`: the service restarts healthy |
//! | `service.stop` | created by the fixture when dropped: the service exits |
//!
//! Without `--healthy` it is faulty: `GET /health` answers 503
//! `{"status":"degraded","reason":"connection pool exhausted"}` and it logs
//! `ERROR pool: connection pool exhausted (50/50 in use)` every two seconds. With `--healthy`
//! it answers 200 `{"status":"ok"}`.
//!
//! On `restart.request` it removes the file, closes its port, starts a fresh healthy process
//! on the same port (in its own process group, outside any sandbox the requester runs in) and
//! exits. It also exits when DIR disappears or `service.pid` names another process, so a
//! leaked service does not outlive its test.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VERSION: &str = "1.4.2";
const POOL_SIZE: u32 = 50;
const ERROR_EVERY: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(25);
const CONTROL_EVERY: Duration = Duration::from_millis(100);
const BIND_RETRY_FOR: Duration = Duration::from_secs(10);

struct Options {
    dir: PathBuf,
    port: u16,
    healthy: bool,
    restarted: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe") {
        return probe(args.get(1).map(String::as_str));
    }
    let options = match parse(&args) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("hybrid-demo-service: {message}");
            eprintln!(
                "usage: hybrid-demo-service --dir DIR [--port N] [--healthy] [--restarted] | probe PORT"
            );
            return ExitCode::from(2);
        }
    };
    let service = Service::new(options);
    match service.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            service.log("ERROR", &format!("fatal: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut dir = None;
    let mut port = 0u16;
    let mut healthy = false;
    let mut restarted = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => dir = it.next().map(PathBuf::from),
            "--port" => {
                let value = it.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|_| format!("bad port {value:?}"))?;
            }
            "--healthy" => healthy = true,
            "--restarted" => restarted = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    Ok(Options {
        dir,
        port,
        healthy,
        restarted,
    })
}

/// `probe PORT`: GET /health once.
fn probe(port: Option<&str>) -> ExitCode {
    let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: hybrid-demo-service probe PORT");
        return ExitCode::from(2);
    };
    match get_health(port) {
        Ok(status) => {
            let _ = writeln!(io::stdout(), "{status}");
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            eprintln!("probe: network not permitted: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn get_health(port: u16) -> io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))
}

struct Service {
    options: Options,
    pid: u32,
}

impl Service {
    fn new(options: Options) -> Self {
        Self {
            options,
            pid: std::process::id(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.options.dir.join(name)
    }

    fn log(&self, level: &str, message: &str) {
        let line = format!("{} {level:<5} {message}\n", timestamp());
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file("service.log"))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn run(&self) -> io::Result<()> {
        let o = &self.options;
        if o.restarted {
            self.log("INFO", &format!("restarted; pool reset (pid {})", self.pid));
        } else {
            self.log(
                "INFO",
                &format!("demo-service {VERSION} starting (pid {})", self.pid),
            );
        }
        self.log(
            "INFO",
            &format!("pool: max_connections={POOL_SIZE} acquire_timeout=5000ms"),
        );
        let listener = self.bind()?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        write_atomic(&self.file("service.port"), &format!("{port}\n"))?;
        write_atomic(&self.file("service.pid"), &format!("{}\n", self.pid))?;
        self.log("INFO", &format!("listening on 127.0.0.1:{port}"));
        if o.healthy {
            self.log("INFO", &format!("pool: 2/{POOL_SIZE} connections in use"));
        } else {
            self.log("WARN", &format!("pool: 47/{POOL_SIZE} connections in use"));
            self.pool_errors(0);
        }
        let state = if o.healthy { "ok" } else { "degraded" };
        write_atomic(
            &self.file("service.state"),
            &format!("{state} {}\n", self.pid),
        )?;

        let mut tick = 1u64;
        let mut last_error = Instant::now();
        let mut last_control = Instant::now();
        loop {
            match listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.log("WARN", &format!("accept failed: {e}"));
                    std::thread::sleep(POLL);
                }
            }
            if !o.healthy && last_error.elapsed() >= ERROR_EVERY {
                self.pool_errors(tick);
                tick += 1;
                last_error = Instant::now();
            }
            if last_control.elapsed() >= CONTROL_EVERY {
                last_control = Instant::now();
                if !o.dir.is_dir() || self.file("service.stop").exists() {
                    return Ok(());
                }
                if let Ok(pid) = fs::read_to_string(self.file("service.pid"))
                    && pid.trim() != self.pid.to_string()
                {
                    self.log(
                        "INFO",
                        &format!("pid {} took over; exiting (pid {})", pid.trim(), self.pid),
                    );
                    return Ok(());
                }
                if self.file("restart.request").exists() {
                    drop(listener);
                    return self.restart(port);
                }
            }
        }
    }

    /// Binds the port, retrying while a previous process still holds it.
    fn bind(&self) -> io::Result<TcpListener> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.options.port));
        let started = Instant::now();
        loop {
            match TcpListener::bind(addr) {
                Ok(l) => return Ok(l),
                Err(e)
                    if e.kind() == io::ErrorKind::AddrInUse
                        && started.elapsed() < BIND_RETRY_FOR =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("bind {addr}: {e}"))),
            }
        }
    }

    fn pool_errors(&self, tick: u64) {
        self.log(
            "ERROR",
            &format!("pool: connection pool exhausted ({POOL_SIZE}/{POOL_SIZE} in use)"),
        );
        let detail = match tick % 3 {
            0 => "db: query aborted: no connection available after 5000ms (orders.list)",
            1 => "http: GET /api/orders -> 503 (timed out acquiring a pooled connection)",
            _ => "pool: 12 connections held longer than 300s (possible leak in report worker)",
        };
        self.log("ERROR", detail);
    }

    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or("");
        let path = words.next().unwrap_or("");
        let (status, body) = match (method, path) {
            ("GET" | "HEAD", "/health") if self.options.healthy => (200, r#"{"status":"ok"}"#),
            ("GET" | "HEAD", "/health") => {
                self.log("WARN", "health: degraded (connection pool exhausted)");
                (
                    503,
                    r#"{"status":"degraded","reason":"connection pool exhausted"}"#,
                )
            }
            ("GET" | "HEAD", "/") => (200, r#"{"service":"demo-service"}"#),
            _ => (404, r#"{"error":"not found"}"#),
        };
        let reason = match status {
            200 => "OK",
            503 => "Service Unavailable",
            _ => "Not Found",
        };
        let body = if method == "HEAD" { "" } else { body };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
        let _ = stream.flush();
    }

    /// Starts a healthy successor on the same port and returns (so this process exits).
    fn restart(&self, port: u16) -> io::Result<()> {
        let _ = fs::remove_file(self.file("restart.request"));
        self.log(
            "INFO",
            &format!(
                "restart requested; draining pool and exiting (pid {})",
                self.pid
            ),
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file("service.log"))?;
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .arg("--dir")
            .arg(&self.options.dir)
            .arg("--port")
            .arg(port.to_string())
            .arg("--healthy")
            .arg("--restarted")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        self.log("INFO", &format!("successor started (pid {})", child.id()));
        Ok(())
    }
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// `2025-01-01T12:00:00.123Z` (UTC).
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
