//! The bridge benchmark: `cargo bench --bench bridge` (see docs/benchmarks.md).
//!
//! Builds the release binary as `cargo build --release` does and drives it against a fake
//! Handinger API on loopback that answers at once, and prints one table:
//! stdio cold start, per-call overhead over a direct HTTP call to the same fake, peak
//! memory after 1,000 calls, 10,000 concurrent calls over HTTP, and a 100 MiB upload.
//!
//! Beside it, the same stdio jobs run through a minimal bridge written with the official
//! Python and TypeScript MCP SDKs (`benches/baselines/`), installed under `.bench/` on
//! first use, so the comparison is made on the same machine in the same run.
//!
//! Every MCP exchange here is raw JSON-RPC over the child's pipes, one line each way, with
//! no client library in between: what is timed is the bridge, not a client's overhead.
//!
//! Knobs (environment): `BENCH_CALLS` (timed calls per bridge, default 5000),
//! `BENCH_COLD_RUNS` (cold starts per bridge, default 20), `BENCH_HTTP_CALLS` (concurrent
//! HTTP calls, default 10000), `BENCH_HOLD_MS` (how long the fake holds each of those,
//! default 2000), `BENCH_BASELINES=0` (skip the SDK bridges), `BENCH_STDIO=0` (skip the
//! sequential stdio calls and the upload: cold start and HTTP mode only), `BENCH_BINARY` (another
//! build of the bridge, e.g. one with symbols for `perf record`).

#[allow(dead_code)]
#[path = "../tests/it/common/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "../tests/it/common/rpc.rs"]
mod rpc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The bridge binary under test: `BENCH_BINARY`, or the release build made by [`build`].
fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| std::env::var_os("BENCH_BINARY").map_or_else(build, PathBuf::from))
        .clone()
}

/// Builds the binary exactly as `cargo build --release` does, into its own target
/// directory. The one cargo builds for `cargo bench` is not it: cargo unifies the
/// dev-dependencies' features into it (rmcp's client, an HTTPS server stack), which makes
/// it bigger than what ships.
fn build() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(ROOT).join("target"), PathBuf::from)
        .join("bench-release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "bench: building the release binary into {}",
        target.display()
    );
    let built = Command::new(cargo)
        .args(["build", "--release", "--locked", "--bin", "handinger-mcp"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(ROOT)
        .status()
        .is_ok_and(|s| s.success());
    assert!(built, "cargo build --release failed");
    target.join("release/handinger-mcp")
}
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Calls made before timing starts (connection pools, allocator, JIT for the baselines).
const WARMUP_CALLS: usize = 200;
/// Calls after which peak memory is read.
const RSS_AFTER_CALLS: usize = 1000;

fn main() {
    let settings = Settings::from_env();
    let bridge = binary();
    let size = std::fs::metadata(&bridge).map_or(0, |m| m.len());
    eprintln!(
        "bench: bridge {} ({:.1} MB)",
        bridge.display(),
        size as f64 / 1e6
    );
    let load_before = load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fake = runtime.block_on(fake::FakeHandinger::start());
    handinger_mcp::handinger::redirect::use_ring_crypto();
    let floor_client = reqwest::Client::new();
    eprintln!("bench: fake Handinger at {}", fake.base_url);

    let mut bridges = vec![Subject::rust()];
    if settings.baselines {
        bridges.extend(Subject::python());
        bridges.extend(Subject::node());
    }

    let mut columns = Vec::new();
    for subject in &bridges {
        eprintln!(
            "bench: {} — cold start x{}",
            subject.label, settings.cold_runs
        );
        let cold = cold_start(subject, &fake.base_url, settings.cold_runs);
        let calls = if settings.stdio {
            eprintln!("bench: {} — {} calls", subject.label, settings.calls);
            call_overhead(
                subject,
                &fake.base_url,
                settings.calls,
                &runtime,
                &floor_client,
            )
        } else {
            CallFigures {
                bridged: Vec::new(),
                direct: Vec::new(),
                peak_rss: None,
                cpu_per_call: None,
            }
        };
        columns.push(Column {
            label: subject.label.clone(),
            cold,
            calls,
        });
    }

    let upload = settings.stdio.then(|| {
        eprintln!("bench: 100 MiB attachment");
        upload_100_mib(&fake.base_url)
    });
    eprintln!("bench: HTTP mode");
    let http = http_mode(&runtime, &settings);

    print_table(&columns, upload.as_ref(), &http, &settings);
    println!();
    println!(
        "Bridge binary: {:.1} MB, as `cargo build --release` makes it.",
        size as f64 / 1e6
    );
    println!("{}", machine(&load_before));
}

/// The machine, for the record: cores, CPU, memory, kernel, compiler, and the load average
/// before and after the run (other work on the machine makes timings noisy).
fn machine(load_before: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim());
    let memory = proc_status_kib_of("/proc/meminfo", "MemTotal:").map_or("?".into(), |kib| {
        format!("{:.1} GiB", kib as f64 / 1048576.0)
    });
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = output_of(Command::new("uname").arg("-r")).unwrap_or_default();
    let rustc = output_of(Command::new("rustc").arg("--version")).unwrap_or_default();
    format!(
        "Machine: {cores} cores ({cpu}), {memory} memory, Linux {kernel}, {rustc}; load average {load_before} before, {} after.",
        load_average()
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

struct Settings {
    calls: usize,
    cold_runs: usize,
    http_calls: usize,
    hold: Duration,
    baselines: bool,
    /// Whether to run the sequential stdio calls and the upload (`BENCH_STDIO=0` skips
    /// them, to measure cold start and HTTP mode alone).
    stdio: bool,
}

impl Settings {
    fn from_env() -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Settings {
            calls: number("BENCH_CALLS", 5000).max(RSS_AFTER_CALLS),
            cold_runs: number("BENCH_COLD_RUNS", 20).max(1),
            http_calls: number("BENCH_HTTP_CALLS", 10_000).max(1),
            hold: Duration::from_millis(number("BENCH_HOLD_MS", 2000) as u64),
            baselines: std::env::var("BENCH_BASELINES").map_or(true, |v| v != "0"),
            stdio: std::env::var("BENCH_STDIO").map_or(true, |v| v != "0"),
        }
    }
}

/// A bridge under test: how to start it over stdio.
struct Subject {
    label: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Subject {
    fn rust() -> Self {
        Subject {
            label: format!("handinger-mcp {}", env!("CARGO_PKG_VERSION")),
            program: binary(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The Python SDK bridge, installing the SDK into `.bench/venv` when missing.
    fn python() -> Option<Self> {
        let venv = Path::new(ROOT).join(".bench/venv");
        let python = venv.join("bin/python");
        let requirements = Path::new(ROOT).join("benches/baselines/requirements.txt");
        let installed = python.exists()
            && Command::new(&python)
                .args(["-c", "import mcp"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            eprintln!("bench: installing the Python MCP SDK into .bench/venv");
            let made = python.exists()
                || run_quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv));
            let ok = made
                && run_quiet(
                    Command::new(&python)
                        .args(["-m", "pip", "install", "-q", "-r"])
                        .arg(&requirements),
                );
            if !ok {
                eprintln!("bench: the Python SDK could not be installed; skipping it");
                return None;
            }
        }
        let version = output_of(Command::new(&python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('mcp'))",
        ]))?;
        Some(Subject {
            label: format!("Python SDK (mcp {version})"),
            program: python,
            args: vec![format!("{ROOT}/benches/baselines/python_bridge.py")],
            env: Vec::new(),
        })
    }

    /// The TypeScript SDK bridge, installing the SDK into `.bench/node` when missing.
    fn node() -> Option<Self> {
        let prefix = Path::new(ROOT).join(".bench/node");
        let modules = prefix.join("node_modules");
        let package = modules.join("@modelcontextprotocol/sdk/package.json");
        if !package.exists() {
            eprintln!("bench: installing the TypeScript MCP SDK into .bench/node");
            let _ = std::fs::create_dir_all(&prefix);
            let copied = std::fs::copy(
                Path::new(ROOT).join("benches/baselines/package.json"),
                prefix.join("package.json"),
            );
            let ok = copied.is_ok()
                && run_quiet(
                    Command::new("npm")
                        .args(["install", "--no-audit", "--no-fund", "--prefix"])
                        .arg(&prefix),
                );
            if !ok {
                eprintln!("bench: the TypeScript SDK could not be installed; skipping it");
                return None;
            }
        }
        let manifest: Value = serde_json::from_slice(&std::fs::read(&package).ok()?).ok()?;
        let version = manifest["version"].as_str()?.to_owned();
        let node = output_of(Command::new("node").arg("--version"))?;
        Some(Subject {
            label: format!("TypeScript SDK ({version}, node {node})"),
            program: "node".into(),
            args: vec![format!("{ROOT}/benches/baselines/node_bridge.cjs")],
            env: vec![("NODE_PATH".into(), modules.display().to_string())],
        })
    }

    fn spawn(&self, base_url: &str, extra_args: &[&str]) -> StdioBridge {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .args(extra_args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HANDINGER_API_KEY", fake::API_KEY)
            .env("HANDINGER_BASE_URL", base_url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn the bridge");
        let rpc = rpc::BlockingStdio::new(&mut child);
        StdioBridge { child, rpc }
    }
}

fn run_quiet(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output_of(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A bridge child process and a blocking, one-line-per-message JSON-RPC client on it.
struct StdioBridge {
    child: Child,
    rpc: rpc::BlockingStdio,
}

impl StdioBridge {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn initialize(&mut self) {
        self.rpc.initialize("2025-06-18", "bridge-bench");
    }

    fn list_tools(&mut self) {
        let answer = self.rpc.request("tools/list", json!({}));
        let tools = answer["result"]["tools"].as_array().map_or(0, Vec::len);
        assert!(tools >= 1, "tools/list: {answer}");
    }

    fn create_task(&mut self, arguments: Value) -> Value {
        self.rpc.request(
            "tools/call",
            json!({"name": "create_task", "arguments": arguments}),
        )
    }

    fn close(mut self) {
        // Dropping the client closes the bridge's stdin.
        drop(self.rpc);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn → `initialize` answered → `tools/list` answered, `runs` times.
fn cold_start(subject: &Subject, base_url: &str, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut bridge = subject.spawn(base_url, &[]);
            bridge.initialize();
            bridge.list_tools();
            let elapsed = started.elapsed();
            bridge.close();
            elapsed
        })
        .collect()
}

struct CallFigures {
    bridged: Vec<Duration>,
    direct: Vec<Duration>,
    /// VmHWM after [`RSS_AFTER_CALLS`] calls, bytes.
    peak_rss: Option<u64>,
    /// Bridge CPU time (user + system) over the timed calls, divided by their number.
    cpu_per_call: Option<Duration>,
}

/// Sequential `create_task` calls through the bridge, each paired with a direct
/// `POST /api/tasks` to the same fake (alternating, so noise hits both alike).
fn call_overhead(
    subject: &Subject,
    base_url: &str,
    calls: usize,
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
) -> CallFigures {
    let mut bridge = subject.spawn(base_url, &[]);
    bridge.initialize();
    let pid = bridge.pid();
    let url = format!("{base_url}/api/tasks");
    let auth = format!("Bearer {}", fake::API_KEY);
    let direct_call = |i: usize| {
        runtime.block_on(async {
            let answer: Value = http
                .post(&url)
                .header("authorization", &auth)
                .json(&json!({"input": format!("direct call {i}"), "budget": "standard", "taskId": format!("tsk_direct_{i}")}))
                .send()
                .await
                .expect("direct POST")
                .json()
                .await
                .expect("direct answer");
            assert!(answer["output_text"].is_string(), "direct: {answer}");
        })
    };
    let mut bridged_call = |i: usize| {
        let answer = bridge.create_task(json!({"input": format!("bridged call {i}")}));
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("");
        assert!(
            answer["result"]["isError"] != json!(true) && text.contains("answer to: bridged call"),
            "{}: {answer}",
            subject.label
        );
    };
    for i in 0..WARMUP_CALLS {
        direct_call(i);
        bridged_call(i);
    }
    let mut bridged = Vec::with_capacity(calls);
    let mut direct = Vec::with_capacity(calls);
    let mut peak_rss = None;
    let cpu_before = cpu_time(pid);
    for i in 0..calls {
        let started = Instant::now();
        direct_call(WARMUP_CALLS + i);
        direct.push(started.elapsed());
        let started = Instant::now();
        bridged_call(WARMUP_CALLS + i);
        bridged.push(started.elapsed());
        if i + 1 == RSS_AFTER_CALLS {
            peak_rss = vm_hwm(pid);
        }
    }
    let cpu_after = cpu_time(pid);
    let cpu_per_call = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after.saturating_sub(before) / calls as u32);
    bridge.close();
    CallFigures {
        bridged,
        direct,
        peak_rss,
        cpu_per_call,
    }
}

struct UploadFigures {
    idle_rss: Option<u64>,
    peak_rss: Option<u64>,
    elapsed: Duration,
    ok: bool,
}

/// One `create_task` with a 100 MiB local file: the bridge's peak RSS while it streams.
fn upload_100_mib(base_url: &str) -> UploadFigures {
    const SIZE: u64 = 100 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.bin");
    {
        // Real bytes, not a sparse file, so the kernel really reads them.
        let mut file = std::fs::File::create(&big).expect("create the file");
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..(SIZE >> 20) {
            file.write_all(&chunk).expect("write the file");
        }
    }
    let subject = Subject::rust();
    let dir_arg = dir.path().to_str().expect("UTF-8 temp dir").to_owned();
    let mut bridge = subject.spawn(base_url, &["--allow-dir", &dir_arg]);
    bridge.initialize();
    // One small call first, so "idle" includes the HTTP client's warm state.
    bridge.create_task(json!({"input": "warm up"}));
    let idle_rss = vm_rss(bridge.pid());
    let started = Instant::now();
    let answer = bridge.create_task(json!({
        "input": "checksum this",
        "files": [{"path": big.to_str().expect("UTF-8 path")}]
    }));
    let elapsed = started.elapsed();
    let ok = answer["result"]["isError"] != json!(true)
        && answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("answer to: checksum this"));
    let peak_rss = vm_hwm(bridge.pid());
    bridge.close();
    UploadFigures {
        idle_rss,
        peak_rss,
        elapsed,
        ok,
    }
}

enum HttpFigures {
    /// Why the row could not be measured.
    NotMeasured(String),
    Measured {
        calls: usize,
        answered_ok: usize,
        errors: usize,
        /// Most calls held upstream at the same moment.
        max_in_flight: usize,
        wall: Duration,
        peak_rss: Option<u64>,
        /// RSS just before the burst (after the warm-up call), bytes.
        rss_before: Option<u64>,
        cpu_per_call: Option<Duration>,
    },
}

/// Calls opened per wave in HTTP mode, and the pause between waves: all of them are still
/// held upstream together, but the bridge's accept queue is not flooded with 10,000
/// simultaneous SYNs (which only measures the kernel's SYN retry timer).
const HTTP_WAVE: usize = 500;
const HTTP_WAVE_PAUSE: Duration = Duration::from_millis(25);

/// 10,000 concurrent `create_task` calls over Streamable HTTP (`--stateless`), each held
/// 2 s upstream.
///
/// Each call is its own HTTP/1.1 connection into the bridge. Upstream, the fake speaks
/// HTTPS with HTTP/2, as an API edge does, so the bridge multiplexes its calls over one
/// connection: over plain HTTP/1.1 it would need a second socket per held call, and
/// 20,000 sockets is more than this machine's per-process descriptor limit.
///
/// Measured twice: `--stateless` (every call a self-contained request), and with sessions
/// (the default mode), the calls spread over [`HTTP_SESSIONS`] sessions.
fn http_mode(runtime: &tokio::runtime::Runtime, settings: &Settings) -> Vec<(String, HttpFigures)> {
    let stateless = "HTTP, --stateless".to_owned();
    let sessions = format!("HTTP, {HTTP_SESSIONS} sessions");
    let help = output_of(Command::new(binary()).arg("--help")).unwrap_or_default();
    let has_http = help
        .lines()
        .any(|line| line.trim_start().starts_with("http "));
    if !has_http {
        return vec![(
            stateless,
            HttpFigures::NotMeasured("HTTP mode not available".into()),
        )];
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(tls) = TlsFiles::make(dir.path()) else {
        let why = "openssl (for the fake's certificate) not found";
        return vec![(stateless, HttpFigures::NotMeasured(why.into()))];
    };
    vec![
        (
            stateless,
            runtime.block_on(http_burst(settings, &tls, dir.path(), None)),
        ),
        (
            sessions,
            runtime.block_on(http_burst(settings, &tls, dir.path(), Some(HTTP_SESSIONS))),
        ),
    ]
}

/// Sessions the calls are spread over in the second HTTP measurement: like many clients,
/// each with a few calls in flight.
const HTTP_SESSIONS: usize = 100;

/// Opens an MCP session (`initialize`, then `notifications/initialized`); its id.
async fn open_session(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let initialize = rpc::initialize(0, "2025-11-25", "bridge-bench");
    let response = rpc::post(http, url)
        .json(&initialize)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no session id (HTTP {})", response.status()))?;
    response.text().await.map_err(|e| e.to_string())?;
    rpc::post_initialized(http, url, Some(&session), &rpc::initialized())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(session)
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with `openssl`.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn make(dir: &Path) -> Option<Self> {
        let path = |name: &str| dir.join(name);
        let ext = path("leaf.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .ok()?;
        let openssl = |args: &[&std::ffi::OsStr]| {
            Command::new("openssl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let (ca_key, ca, key, csr, cert) = (
            path("ca.key"),
            path("ca.pem"),
            path("leaf.key"),
            path("leaf.csr"),
            path("leaf.pem"),
        );
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        let ok = openssl(&[
            os("req"),
            os("-x509"),
            os("-days"),
            os("2"),
            os("-subj"),
            os("/CN=bench CA"),
            os("-newkey"),
            os("ec"),
            os("-pkeyopt"),
            os("ec_paramgen_curve:prime256v1"),
            os("-nodes"),
            os("-keyout"),
            ca_key.as_os_str(),
            os("-out"),
            ca.as_os_str(),
        ]) && openssl(&[
            os("req"),
            os("-subj"),
            os("/CN=127.0.0.1"),
            os("-newkey"),
            os("ec"),
            os("-pkeyopt"),
            os("ec_paramgen_curve:prime256v1"),
            os("-nodes"),
            os("-keyout"),
            key.as_os_str(),
            os("-out"),
            csr.as_os_str(),
        ]) && openssl(&[
            os("x509"),
            os("-req"),
            os("-days"),
            os("2"),
            os("-in"),
            csr.as_os_str(),
            os("-CA"),
            ca.as_os_str(),
            os("-CAkey"),
            ca_key.as_os_str(),
            os("-CAcreateserial"),
            os("-extfile"),
            ext.as_os_str(),
            os("-out"),
            cert.as_os_str(),
        ]);
        ok.then_some(TlsFiles { ca, cert, key })
    }
}

/// Serves the fake over TLS (HTTP/2 or HTTP/1.1 by ALPN); returns its `https://` base URL.
async fn serve_fake_tls(state: fake::Shared, tls: &TlsFiles) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{self, ServerConfig};

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .expect("read the certificate")
        .collect::<Result<_, _>>()
        .expect("parse the certificate");
    let key = PrivateKeyDer::from_pem_file(&tls.key).expect("read the key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("https://{}", listener.local_addr().expect("address"));
    let app = fake::router(state);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(Some(1_000_000));
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base_url
}

async fn http_burst(
    settings: &Settings,
    tls: &TlsFiles,
    dir: &Path,
    sessions: Option<usize>,
) -> HttpFigures {
    let state: fake::Shared = Default::default();
    state.lock().expect("fake state").turn_duration = settings.hold;
    let base_url = serve_fake_tls(state.clone(), tls).await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address").port()
    };
    let no_system_roots = dir.join("no-roots");
    let _ = std::fs::create_dir_all(&no_system_roots);
    let calls = settings.http_calls;
    let mut child = Command::new(binary())
        .args(["http", "--listen", &format!("127.0.0.1:{port}")])
        .args(sessions.is_none().then_some("--stateless"))
        .args(["--max-concurrent-calls", &(calls + 10).to_string()])
        .args(["--rate-limit", "0", "--address-rate-limit", "0"])
        // Every call is its own connection from one address: lift the bounds that would
        // (rightly) refuse such a burst from one client.
        .args(["--max-connections", &(calls + 100).to_string()])
        .args(["--max-connections-per-client", &(calls + 100).to_string()])
        .args([
            "--max-pending-connections-per-client",
            &(calls + 100).to_string(),
        ])
        .args(["--max-sessions", &(HTTP_SESSIONS + 10).to_string()])
        .args([
            "--max-sessions-per-client",
            &(HTTP_SESSIONS + 10).to_string(),
        ])
        // One key runs every turn here: lift the turns-in-flight bounds to the burst too.
        .args(["--max-turns-in-flight", &(calls + 10).to_string()])
        .args(["--max-turns-in-flight-per-key", &(calls + 10).to_string()])
        .env_clear()
        .env("HANDINGER_API_KEY", fake::API_KEY)
        .env("HANDINGER_BASE_URL", &base_url)
        .env("SSL_CERT_FILE", &tls.ca)
        .env("SSL_CERT_DIR", &no_system_roots)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn handinger-mcp http");
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("HTTP client");
    // Ready when the server opens sessions (sessions mode) or answers a first call.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut session_ids = Vec::new();
    if let Some(count) = sessions {
        let mut first = open_session(&http, &url).await;
        while first.is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            first = open_session(&http, &url).await;
        }
        session_ids.push(first);
        for _ in 1..count {
            session_ids.push(open_session(&http, &url).await);
        }
    }
    let session_ids: Vec<String> = match session_ids.into_iter().collect() {
        Ok(ids) => ids,
        Err(error) => {
            stop(&mut child);
            return HttpFigures::NotMeasured(format!("no MCP session: {error}"));
        }
    };
    let call = |i: usize| {
        let (http, url) = (http.clone(), url.clone());
        let session = (!session_ids.is_empty()).then(|| session_ids[i % session_ids.len()].clone());
        async move {
            let body = rpc::tool_call(i, "create_task", json!({"input": format!("http call {i}")}));
            let response = rpc::post_initialized(&http, &url, session.as_deref(), &body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            let answer = rpc::http_answer(&text, Some(&json!(i))).ok_or_else(|| {
                format!(
                    "HTTP {status}: {}",
                    text.chars().take(300).collect::<String>()
                )
            })?;
            let result = &answer["result"]["structuredContent"];
            let expected = format!("answer to: http call {i} (turn 1)");
            if status.is_success()
                && result["status"] == "completed"
                && result["outputText"] == expected.as_str()
            {
                Ok(())
            } else {
                Err(format!("HTTP {status}: {answer}"))
            }
        }
    };
    // A first call also opens the upstream HTTP/2 connection.
    // JSON-RPC ids past the burst's, so the warm-up calls never share an input with it.
    let mut warm_id = calls;
    let mut warm = call(warm_id).await;
    while warm.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        warm_id += 1;
        warm = call(warm_id).await;
    }
    if let Err(error) = warm {
        stop(&mut child);
        return HttpFigures::NotMeasured(format!("the HTTP bridge did not answer: {error}"));
    }

    let cpu_before = cpu_time(pid);
    let rss_before = vm_rss(pid);
    let started = Instant::now();
    let mut running = Vec::with_capacity(calls);
    for i in 0..calls {
        let wave = (i / HTTP_WAVE) as u32;
        let call = call(i);
        running.push(tokio::spawn(async move {
            tokio::time::sleep(HTTP_WAVE_PAUSE * wave).await;
            let sent = Instant::now();
            let outcome = call.await;
            (sent, Instant::now(), outcome)
        }));
    }
    let mut spans = Vec::with_capacity(calls);
    let (mut answered_ok, mut errors, mut first_error) = (0, 0, None);
    for task in running {
        let (sent, done, outcome) = task.await.expect("call task");
        spans.push((sent, done));
        match outcome {
            Ok(()) => answered_ok += 1,
            Err(error) => {
                errors += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let wall = started.elapsed();
    let cpu_after = cpu_time(pid);
    let peak_rss = vm_hwm(pid);
    stop(&mut child);
    if let Some(error) = first_error {
        eprintln!("bench: first HTTP error: {error}");
    }
    HttpFigures::Measured {
        calls,
        answered_ok,
        errors,
        max_in_flight: max_overlap(&spans),
        wall,
        peak_rss,
        rss_before,
        cpu_per_call: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before) / calls as u32),
    }
}

/// Asks a server to stop (SIGTERM, its graceful shutdown), and kills it after 10 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Most intervals open at one instant.
fn max_overlap(spans: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, i32)> = spans
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    most as usize
}

/// Peak resident memory (VmHWM) of a process, bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Current resident memory (VmRSS) of a process, bytes.
fn vm_rss(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    proc_status_kib_of(&format!("/proc/{pid}/status"), field)
}

/// A `Field:   N kB` line of a /proc file.
fn proc_status_kib_of(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of a process so far, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        output_of(Command::new("getconf").arg("CLK_TCK"))
            .and_then(|t| t.parse().ok())
            .unwrap_or(100)
    })
}

struct Column {
    label: String,
    cold: Vec<Duration>,
    calls: CallFigures,
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// `a - b`, or zero when b is larger (noise can make the floor slower than the bridge).
fn over(a: Duration, b: Duration) -> Duration {
    a.saturating_sub(b)
}

fn print_table(
    columns: &[Column],
    upload: Option<&UploadFigures>,
    http: &[(String, HttpFigures)],
    settings: &Settings,
) {
    let ours = &columns[0];
    let mut header = vec![
        "figure".to_owned(),
        "target".to_owned(),
        ours.label.clone(),
        "status".to_owned(),
        "direct HTTP (floor)".to_owned(),
    ];
    header.extend(columns[1..].iter().map(|c| c.label.clone()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let others =
        |f: &dyn Fn(&Column) -> String| -> Vec<String> { columns[1..].iter().map(f).collect() };

    let cold = |c: &Column| percentile(&c.cold, 50.0);
    let cold_ours = cold(ours);
    let mut row = vec![
        format!(
            "stdio cold start: spawn → initialize + tools/list (median of {})",
            ours.cold.len()
        ),
        "≤ 5 ms".into(),
        ms(cold_ours),
        mark(cold_ours <= Duration::from_millis(5)).into(),
        "—".into(),
    ];
    row.extend(others(&|c| ms(cold(c))));
    rows.push(row);

    // Skipped with BENCH_STDIO=0.
    if !ours.calls.bridged.is_empty() {
        let p = |c: &Column, q: f64| {
            (
                percentile(&c.calls.bridged, q),
                percentile(&c.calls.direct, q),
            )
        };
        for (q, label, target, limit) in [
            (50.0, "p50", "≤ 0.2 ms", Duration::from_micros(200)),
            (99.0, "p99", "≤ 1 ms", Duration::from_millis(1)),
        ] {
            let (bridged, direct) = p(ours, q);
            let mut row = vec![
                format!(
                    "create_task round trip {label} ({} sequential calls)",
                    ours.calls.bridged.len()
                ),
                "—".into(),
                ms(bridged),
                String::new(),
                ms(direct),
            ];
            row.extend(others(&|c| ms(p(c, q).0)));
            rows.push(row);
            let overhead = over(bridged, direct);
            let mut row = vec![
                format!("per-call overhead over direct HTTP, {label}"),
                target.into(),
                ms(overhead),
                mark(overhead <= limit).into(),
                "0 (floor)".into(),
            ];
            row.extend(others(&|c| {
                let (b, d) = p(c, q);
                ms(over(b, d))
            }));
            rows.push(row);
        }

        let mut row = vec![
            format!("peak RSS after {RSS_AFTER_CALLS} calls (VmHWM)"),
            "≤ 12 MiB".into(),
            mib(ours.calls.peak_rss),
            mark(ours.calls.peak_rss.is_some_and(|b| b <= 12 << 20)).into(),
            "—".into(),
        ];
        row.extend(others(&|c| mib(c.calls.peak_rss)));
        rows.push(row);

        let cpu = |c: &Column| c.calls.cpu_per_call.map_or("n/a".into(), us);
        let mut row = vec![
            "bridge CPU time per stdio call (user+sys)".into(),
            "report".into(),
            cpu(ours),
            String::new(),
            "—".into(),
        ];
        row.extend(others(&cpu));
        rows.push(row);
    }

    let blank = || vec!["—".to_owned(); columns.len() - 1];
    let push = |rows: &mut Vec<Vec<String>>, cells: [String; 4]| {
        let [figure, target, value, status] = cells;
        let mut row = vec![figure, target, value, status, "—".into()];
        row.extend(blank());
        rows.push(row);
    };
    for (mode, figures) in http {
        let calls_label = format!(
            "{mode}: {} concurrent create_task, upstream holds each {} s",
            settings.http_calls,
            settings.hold.as_secs_f64()
        );
        match figures {
            HttpFigures::NotMeasured(why) => {
                for (figure, target) in [
                    (calls_label, "all answered, no errors"),
                    (format!("{mode}: peak RSS"), "≤ 256 MiB"),
                    (format!("{mode}: memory per held call"), "≤ 25 KiB"),
                    (format!("{mode}: bridge CPU time per call"), "report"),
                ] {
                    push(
                        &mut rows,
                        [
                            figure,
                            target.into(),
                            format!("not measured: {why}"),
                            String::new(),
                        ],
                    );
                }
            }
            HttpFigures::Measured {
                calls,
                answered_ok,
                errors,
                max_in_flight,
                wall,
                peak_rss,
                rss_before,
                cpu_per_call,
            } => {
                push(
                    &mut rows,
                    [
                        calls_label,
                        "all answered, no errors".into(),
                        format!(
                            "{answered_ok}/{calls} correct, {errors} errors, {max_in_flight} in flight at once, {:.2} s wall",
                            wall.as_secs_f64()
                        ),
                        mark(*answered_ok == *calls && *errors == 0).into(),
                    ],
                );
                push(
                    &mut rows,
                    [
                        format!("{mode}: peak RSS (VmHWM)"),
                        "≤ 256 MiB".into(),
                        mib(*peak_rss),
                        mark(peak_rss.is_some_and(|b| b <= 256 << 20)).into(),
                    ],
                );
                let per_call = peak_rss.zip(*rss_before).map(|(peak, before)| {
                    peak.saturating_sub(before) / (*max_in_flight).max(1) as u64
                });
                push(
                    &mut rows,
                    [
                        format!(
                            "{mode}: memory per held call ((peak − RSS before) / calls held at once)"
                        ),
                        "≤ 25 KiB".into(),
                        per_call.map_or("n/a".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0)),
                        mark(per_call.is_some_and(|b| b <= 25 << 10)).into(),
                    ],
                );
                push(
                    &mut rows,
                    [
                        format!("{mode}: bridge CPU time per call (user+sys)"),
                        "report".into(),
                        cpu_per_call.map_or("n/a".into(), us),
                        String::new(),
                    ],
                );
            }
        }
    }

    if let Some(upload) = upload {
        let growth = upload
            .peak_rss
            .zip(upload.idle_rss)
            .map(|(peak, idle)| peak.saturating_sub(idle));
        push(
            &mut rows,
            [
                "100 MiB attachment: peak RSS while streaming (idle RSS before)".into(),
                "flat".into(),
                format!(
                    "{} ({} idle, +{}; {:.2} s{})",
                    mib(upload.peak_rss),
                    mib(upload.idle_rss),
                    mib(growth),
                    upload.elapsed.as_secs_f64(),
                    if upload.ok { "" } else { ", FAILED" }
                ),
                mark(upload.ok && growth.is_some_and(|g| g <= 16 << 20)).into(),
            ],
        );
    }

    println!();
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!(
        "Overheads are p(bridge round trip) − p(direct POST), each bridge against direct calls \
         interleaved with its own; {WARMUP_CALLS} warm-up calls first. \"flat\" means the peak \
         grows by at most 16 MiB over idle while 100 MiB streams."
    );
}
