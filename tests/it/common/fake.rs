//! A stand-in for Handinger's HTTP API that behaves like the documented one (auth, tasks with
//! turns, `GET /api/tasks/{id}` and `/turns`, workers, schedules, archiving), records
//! everything it receives, and injects faults on demand.
//!
//! It serves the API as it is today (2026-07 on: the task lookup answers `{task}`, the turns
//! come from `GET /api/tasks/{id}/turns`); [`FakeHandinger::use_legacy_task_shape`] switches
//! it to the older shape (turns embedded in the task answer, no turns endpoint), so the
//! same tests can run against both.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

pub const API_KEY: &str = "hdg_live_test_5f9c2e1d0a";

/// One thing the fake does instead of answering a `POST /api/tasks` normally.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub enum Fault {
    /// Answer with this status and `{"error": message}`, recording no turn.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Record the turn (it runs to completion), then answer with this status: the
    /// ambiguous "it failed after we sent it" case.
    RecordThenStatus(u16),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer 200 with a JSON body of about this many bytes.
    Huge(usize),
    /// Answer 200 with a structured output that is an array of this many zeros: small on
    /// the wire, many times larger as a parsed tree.
    ZerosStructured(usize),
    /// Record the turn (it runs to completion), then answer 200 with a body that is not
    /// JSON.
    RecordThenMalformed,
    /// Record the turn, send the headers, then break the connection mid-body.
    Cut,
    /// Record the turn, then send the normal answer in `chunks` pieces with `pause` before
    /// each: a slow body.
    SlowBody { chunks: usize, pause: Duration },
}

impl Fault {
    /// A short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Status { status: 429, .. } => "429",
            Fault::Status { .. } => "5xx before recording",
            Fault::RecordThenStatus(_) => "5xx after recording",
            Fault::Malformed => "malformed",
            Fault::RecordThenMalformed => "malformed after recording",
            Fault::Huge(_) => "huge",
            Fault::ZerosStructured(_) => "zeros",
            Fault::Cut => "reset mid-body",
            Fault::SlowBody { .. } => "slow body",
        }
    }
}

/// Faults drawn at random from a seeded generator, for soak runs: after the queued
/// [`Fault`]s run out, each `POST /api/tasks` may draw one, and each `GET /api/tasks/{id}`
/// may answer 503. The same seed and the same order of requests give the same faults.
#[derive(Debug, Clone)]
pub struct Chaos {
    state: u64,
    /// Each fault with its chance per mille; requests that draw none answer normally.
    pub post_faults: Vec<(u32, Fault)>,
    /// Chance per mille that a task lookup answers 503.
    pub lookup_failures: u32,
    /// How many of each fault were injected, by [`Fault::kind`] (and "lookup 503").
    pub injected: HashMap<&'static str, u64>,
}

impl Chaos {
    pub fn new(seed: u64, post_faults: Vec<(u32, Fault)>, lookup_failures: u32) -> Self {
        Chaos {
            state: seed,
            post_faults,
            lookup_failures,
            injected: HashMap::new(),
        }
    }

    /// splitmix64: small, fast and good enough to pick faults.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn per_mille(&mut self) -> u32 {
        (self.next_u64() % 1000) as u32
    }

    fn draw_post_fault(&mut self) -> Option<Fault> {
        let mut roll = self.per_mille();
        for (chance, fault) in &self.post_faults {
            if roll < *chance {
                *self.injected.entry(fault.kind()).or_default() += 1;
                return Some(fault.clone());
            }
            roll -= chance;
        }
        None
    }

    fn draw_lookup_failure(&mut self) -> bool {
        let fail = self.per_mille() < self.lookup_failures;
        if fail {
            *self.injected.entry("lookup 503").or_default() += 1;
        }
        fail
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    /// The JSON body, or for multipart the text fields as a JSON object.
    pub body: Value,
    /// Multipart file parts, in order.
    pub uploads: Vec<ReceivedFile>,
}

/// A multipart part as the fake received it.
#[derive(Debug, Clone)]
pub struct ReceivedFile {
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub len: u64,
    /// The first bytes (up to 1 MiB): enough to compare small files, while a large one
    /// streams through without being held.
    pub head: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub input: String,
    pub status: String,
    pub output: Option<String>,
    /// The files the turn published (the `files` of its answer).
    pub files: Value,
}

#[derive(Default)]
pub struct FakeState {
    pub received: Vec<Received>,
    pub tasks: HashMap<String, Vec<TurnRecord>>,
    pub task_workers: HashMap<String, String>,
    pub faults: VecDeque<Fault>,
    /// Replaces the `files` of every answer when set.
    pub answer_files: Option<Value>,
    /// What `GET /files/{name}` serves: media type and bytes.
    pub served_files: HashMap<String, (String, Vec<u8>)>,
    /// The next this many `GET /api/tasks/{id}` answer 503.
    pub failing_lookups: u32,
    /// The next this many `GET /api/tasks/{id}/turns` answer 503.
    pub failing_turn_lists: u32,
    /// `GET /api/tasks/{id}/turns` answers 200 in a shape the bridge does not know.
    pub unknown_turn_list_shape: bool,
    /// Serve the task lookup as deployments before 2026-07 did: `{task, turns}`, and no
    /// turns endpoint.
    pub legacy_task_shape: bool,
    /// How long each turn "runs" before the POST answers.
    pub turn_duration: Duration,
    /// Workers `GET /api/workers/{id}` knows, besides those tasks ran on.
    pub workers: HashSet<String>,
    /// Keys accepted besides [`API_KEY`] (other users' keys, for per-user key tests).
    pub extra_keys: Vec<String>,
    /// Worker templates (WorkerTemplate JSON) made with `POST /api/workers` or
    /// [`FakeHandinger::add_described_worker`], by id.
    pub templates: HashMap<String, Value>,
    /// Schedules by worker id, in creation order.
    pub schedules: HashMap<String, Vec<Value>>,
    /// Tasks archived with `DELETE /api/tasks/{id}`.
    pub archived: HashSet<String>,
    /// Source of the fake's own ids.
    pub next_id: u64,
    /// Statuses (with an optional `Retry-After`) the next worker, schedule and archive
    /// writes answer with instead of doing anything.
    pub write_faults: VecDeque<(u16, Option<u64>)>,
    /// Random faults once the queued ones run out.
    pub chaos: Option<Chaos>,
    /// When set, `GET /api/tasks/{id}/turns` is held until the next task POST has been
    /// recorded: a lookup whose two reads straddle a new turn.
    pub hold_turn_list: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Clone)]
pub struct FakeHandinger {
    pub base_url: String,
    pub state: Arc<Mutex<FakeState>>,
}

#[allow(dead_code)]
impl FakeHandinger {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeHandinger { base_url, state }
    }

    /// Makes `GET /api/workers/{id}` find this worker.
    pub fn add_worker(&self, id: &str) {
        self.state.lock().unwrap().workers.insert(id.to_owned());
    }

    /// Makes `GET /api/workers/{id}` find this worker, with a title and a summary.
    pub fn add_described_worker(&self, id: &str, title: &str, summary: &str) {
        let template = json!({
            "id": id, "title": title, "summary": summary, "instructions": "Be useful.",
            "visibility": "private", "outputSchema": null,
            "url": format!("https://v3.handinger.com/worker/{id}"),
            "organizationId": "org_1", "userId": "usr_1",
            "createdAt": "2026-11-29T00:00:00Z", "updatedAt": "2026-11-29T00:00:00Z"
        });
        self.state
            .lock()
            .unwrap()
            .templates
            .insert(id.to_owned(), template);
    }

    /// The worker template as the fake holds it now.
    pub fn template(&self, id: &str) -> Option<Value> {
        self.state.lock().unwrap().templates.get(id).cloned()
    }

    /// Requests other than `GET`: what changed (or tried to change) something.
    pub fn writes(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// Makes the next write (POST, PATCH, DELETE) to a worker, schedule or archive route
    /// answer `status` without changing anything.
    pub fn push_write_fault(&self, status: u16, retry_after: Option<u64>) {
        self.state
            .lock()
            .unwrap()
            .write_faults
            .push_back((status, retry_after));
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Accepts `key` as a valid API key too.
    pub fn accept_key(&self, key: &str) {
        self.state.lock().unwrap().extra_keys.push(key.to_owned());
    }

    /// Serves the task lookup in the shape older deployments used (see the module doc).
    pub fn use_legacy_task_shape(&self) {
        self.state.lock().unwrap().legacy_task_shape = true;
    }

    pub fn set_turn_duration(&self, duration: Duration) {
        self.state.lock().unwrap().turn_duration = duration;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn posts(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }

    pub fn serve_file_bytes(&self, name: &str, media_type: &str, bytes: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .served_files
            .insert(name.into(), (media_type.into(), bytes.to_vec()));
    }

    /// Makes every answer list these files (`[{filename, mediaType, url, size}]`).
    pub fn set_answer_files(&self, files: Value) {
        self.state.lock().unwrap().answer_files = Some(files);
    }

    /// Draws random faults from now on (see [`Chaos`]).
    pub fn set_chaos(&self, chaos: Chaos) {
        self.state.lock().unwrap().chaos = Some(chaos);
    }

    /// Stops drawing random faults; returns what was injected.
    pub fn stop_chaos(&self) -> Option<Chaos> {
        self.state.lock().unwrap().chaos.take()
    }

    /// Every task the fake holds, with its turns.
    pub fn all_turns(&self) -> HashMap<String, Vec<TurnRecord>> {
        self.state.lock().unwrap().tasks.clone()
    }

    pub fn turns(&self, task_id: &str) -> Vec<TurnRecord> {
        self.state
            .lock()
            .unwrap()
            .tasks
            .get(task_id)
            .cloned()
            .unwrap_or_default()
    }
}

pub type Shared = Arc<Mutex<FakeState>>;

/// The fake's routes on `state`, for serving it some other way (the benchmark serves it
/// over TLS with HTTP/2).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/tasks", post(create_task))
        .route("/api/tasks/{id}", get(get_task).delete(archive_task))
        .route("/api/tasks/{id}/turns", get(list_turns))
        .route("/api/workers", post(create_worker))
        .route(
            "/api/workers/{id}",
            get(get_worker).patch(update_worker).delete(delete_worker),
        )
        .route(
            "/api/workers/{id}/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route(
            "/api/workers/{id}/schedules/{schedule_id}",
            delete(cancel_schedule),
        )
        .route("/files/{name}", get(serve_file))
        .route("/stalled/{name}", get(stall_file))
        // Every route: recorded, the key checked, a queued write fault answered (`gate`).
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .fallback(unknown)
        // Attachments can be large (a 100 MiB upload test streams through).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn record(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Value,
    uploads: Vec<ReceivedFile>,
) {
    state.lock().unwrap().received.push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
        uploads,
    });
}

/// The request body as [`gate`] read and recorded it: the JSON (for multipart, the text
/// fields as an object), `Null` when empty or not JSON. Handlers take it as
/// `Extension<Sent>`.
#[derive(Clone)]
struct Sent(Value);

/// What every route does before its own logic, in this order: record the request (body
/// and file parts included), refuse an API route (`/api/…`) without an accepted key with
/// 401 (the file hosts under `/files` and `/stalled` serve anyone), and answer a write
/// (other than `POST /api/tasks`, whose faults are [`Fault`]s drawn after its input is
/// checked) with a queued write fault. The handler gets the body as [`Sent`].
async fn gate(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // The parts (path parameters among their extensions) go on to the handler; the body
    // is read here once.
    let (sent, uploads) =
        read_task_body(axum::extract::Request::from_parts(parts.clone(), body)).await;
    record(
        &state,
        &parts.method,
        &parts.uri,
        &parts.headers,
        sent.clone(),
        uploads,
    );
    let path = parts.uri.path();
    if path.starts_with("/api/") && !authorized(&state, &parts.headers) {
        return error(401, "Invalid API key");
    }
    let write = matches!(parts.method, Method::POST | Method::PATCH | Method::DELETE);
    if write
        && path != "/api/tasks"
        && let Some(response) = write_fault(&state)
    {
        return response;
    }
    let mut forwarded = axum::extract::Request::from_parts(parts, Body::empty());
    forwarded.extensions_mut().insert(Sent(sent));
    next.run(forwarded).await
}

fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let Some(key) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    key == API_KEY || state.lock().unwrap().extra_keys.iter().any(|k| k == key)
}

fn error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// Reads a JSON or multipart task body: the fields, and the file parts.
async fn read_task_body(request: axum::extract::Request) -> (Value, Vec<ReceivedFile>) {
    use axum::extract::FromRequest;
    let is_multipart = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let bytes = Bytes::from_request(request, &()).await.unwrap_or_default();
        return (
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Vec::new(),
        );
    }
    let mut fields = serde_json::Map::new();
    let mut uploads = Vec::new();
    let Ok(mut multipart) = axum::extract::Multipart::from_request(request, &()).await else {
        return (Value::Null, uploads);
    };
    while let Ok(Some(mut part)) = multipart.next_field().await {
        let field = part.name().unwrap_or_default().to_owned();
        if part.file_name().is_none() {
            let text = part.text().await.unwrap_or_default();
            fields.insert(field, Value::String(text));
            continue;
        }
        let mut received = ReceivedFile {
            field,
            filename: part.file_name().map(str::to_owned),
            content_type: part.content_type().map(str::to_owned),
            len: 0,
            head: Vec::new(),
        };
        while let Ok(Some(chunk)) = part.chunk().await {
            received.len += chunk.len() as u64;
            let room = (1usize << 20).saturating_sub(received.head.len());
            received
                .head
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        uploads.push(received);
    }
    (Value::Object(fields), uploads)
}

async fn create_task(
    State(state): State<Shared>,
    Extension(Sent(body)): Extension<Sent>,
) -> Response {
    let Some(input) = body
        .get("input")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return error(422, "input: String must contain at least 1 character(s)");
    };
    let task_id = body
        .get("taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| "tsk_generated_by_fake".into());
    let worker_id = body
        .get("workerId")
        .and_then(Value::as_str)
        .unwrap_or("wrk_fake_created")
        .to_owned();
    let (fault, duration) = {
        let mut s = state.lock().unwrap();
        let fault = s.faults.pop_front();
        let fault = fault.or_else(|| s.chaos.as_mut().and_then(Chaos::draw_post_fault));
        (fault, s.turn_duration)
    };
    match &fault {
        Some(Fault::Status {
            status,
            message,
            retry_after,
        }) => {
            let mut response = error(*status, message);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            return response;
        }
        Some(Fault::Malformed) => return sign_in_page(),
        Some(Fault::ZerosStructured(count)) => {
            let mut body = worker_answer(&worker_id, "zeros").to_string();
            let zeros = format!("[{}0]", "0,".repeat(count.saturating_sub(1)));
            body = body.replace(r#"{"verdict":"sunny"}"#, &zeros);
            return ([("content-type", "application/json")], body).into_response();
        }
        Some(Fault::Huge(size)) => {
            let padding = "x".repeat(*size);
            return axum::Json(json!({ "output_text": padding })).into_response();
        }
        _ => {}
    }
    let turn = {
        let mut s = state.lock().unwrap();
        s.task_workers
            .entry(task_id.clone())
            .or_insert_with(|| worker_id.clone());
        let turns = s.tasks.entry(task_id.clone()).or_default();
        turns.push(TurnRecord {
            input: input.to_owned(),
            status: "running".into(),
            output: None,
            files: Value::Array(Vec::new()),
        });
        let turn = turns.len();
        if let Some(held) = s.hold_turn_list.take() {
            held.notify_one();
        }
        turn
    };
    // A zero sleep would still wait for the timer's next millisecond tick: skip it, so a
    // fake with no turn duration answers at once (the benchmark's floor depends on it).
    let pause = duration + requested_sleep(input);
    let output = format!("answer to: {input} (turn {turn})");
    let mut answer = worker_answer(&worker_id, &output);
    // Like Handinger, the turn runs to its end even when the client that posted it goes
    // away (a killed replica): its own task, which a dropped connection does not cancel.
    let finishing = {
        let state = state.clone();
        let output = output.clone();
        let task_id = task_id.clone();
        tokio::spawn(async move {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let mut s = state.lock().unwrap();
            let files = s.answer_files.clone();
            if let Some(record) = s.tasks.get_mut(&task_id).and_then(|t| t.get_mut(turn - 1)) {
                record.status = "completed".into();
                record.output = Some(output);
                if let Some(files) = &files {
                    record.files = files.clone();
                } else {
                    record.files = worker_answer("", "")["files"].clone();
                }
            }
            files
        })
    };
    if let Some(files) = finishing.await.unwrap() {
        answer["files"] = files;
    }
    match fault {
        Some(Fault::RecordThenStatus(status)) => error(status, "Bad gateway"),
        Some(Fault::RecordThenMalformed) => sign_in_page(),
        Some(Fault::Cut) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"id\": \"wrk")),
                Err(std::io::Error::other("connection reset by fake")),
            ];
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        }
        Some(Fault::SlowBody { chunks, pause }) => {
            let body = worker_answer(&worker_id, &output).to_string().into_bytes();
            let size = body.len().div_ceil(chunks.max(1));
            let pieces: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
            let stream =
                futures::StreamExt::then(futures::stream::iter(pieces), move |piece| async move {
                    tokio::time::sleep(pause).await;
                    Ok::<_, std::io::Error>(piece)
                });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        _ => axum::Json(answer).into_response(),
    }
}

/// A 200 that is not JSON: what a login page or a misbehaving proxy sends.
fn sign_in_page() -> Response {
    (StatusCode::OK, "<html>Sign in</html>").into_response()
}

/// An input containing `sleep=<ms>` makes that turn run that much longer, so one test can
/// mix slow and quick calls.
fn requested_sleep(input: &str) -> Duration {
    input
        .split_once("sleep=")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}

pub fn worker_answer(worker_id: &str, output: &str) -> Value {
    json!({
        "id": worker_id,
        "object": "worker",
        "created_at": 1_767_225_600,
        "error": null,
        "status": "completed",
        "running": false,
        "output_text": output,
        "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": output}]}],
        "sources": [
            {"id": "src_1", "type": "url", "title": "Barcelona weather", "url": "https://weather.example/bcn"},
            {"id": "src_2", "type": "url", "title": null, "url": "https://news.example/today"}
        ],
        "files": [
            {"filename": "report.csv", "mediaType": "text/csv", "url": "https://files.example/report.csv", "size": 42}
        ],
        "structured_output": {"verdict": "sunny"},
        // Since 2026-07 the answer's usage has no credits: they are in the turn record.
        "usage": {"durationMs": 1200},
        "url": format!("https://v3.handinger.com/worker/{worker_id}"),
        "messages": [],
        "metadata": {},
        "incomplete_details": null,
        "some_future_field": {"nested": true}
    })
}

async fn get_task(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock().unwrap();
    if s.failing_lookups > 0 {
        s.failing_lookups -= 1;
        return error(503, "Lookups unavailable");
    }
    if s.chaos.as_mut().is_some_and(Chaos::draw_lookup_failure) {
        return error(503, "Lookups unavailable");
    }
    let Some(turns) = s.tasks.get(&id) else {
        return error(404, "Task not found");
    };
    let status = turns
        .last()
        .map(|t| t.status.clone())
        .unwrap_or_else(|| "pending".into());
    let task = json!({
        "id": id, "status": status, "title": "A test task",
        "totals": {
            "credits": TURN_CREDITS * turns.len() as u64,
            "durationMs": 1200 * turns.len() as u64,
            "turnCount": turns.len()
        },
        "triggeredBy": "api", "url": format!("https://v3.handinger.com/task/{id}"),
        "workerId": s.task_workers.get(&id), "organizationId": "org_1",
        "createdByUserId": "usr_1", "createdAt": "2026-11-29T00:00:00Z", "completedAt": null
    });
    if s.legacy_task_shape {
        return axum::Json(json!({ "task": task, "turns": turn_values(&id, turns) }))
            .into_response();
    }
    axum::Json(json!({ "task": task })).into_response()
}

/// Credits the fake charges per turn (reported in the turn records and the task's totals).
pub const TURN_CREDITS: u64 = 3;

/// The task's turns as the API reports them.
fn turn_values(task_id: &str, turns: &[TurnRecord]) -> Vec<Value> {
    turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "id": format!("trn_{i}"), "seq": i + 1, "taskId": task_id, "role": "user",
                "status": t.status, "input": t.input, "outputText": t.output.clone().unwrap_or_default(),
                "structuredOutput": null, "credits": TURN_CREDITS, "durationMs": 1200,
                "inputTokens": 10, "outputTokens": 20, "startedAt": "2026-11-29T00:00:00Z",
                "completedAt": null, "files": t.files
            })
        })
        .collect()
}

/// `GET /api/tasks/{id}/turns` (2026-07 on): `{items, taskId}`; absent in the legacy shape.
async fn list_turns(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let held = state.lock().unwrap().hold_turn_list.clone();
    if let Some(recorded) = held {
        recorded.notified().await;
    }
    let mut s = state.lock().unwrap();
    if s.legacy_task_shape {
        return error(404, "No such endpoint");
    }
    if s.failing_turn_lists > 0 {
        s.failing_turn_lists -= 1;
        return error(503, "Turn lists unavailable");
    }
    let Some(turns) = s.tasks.get(&id) else {
        return error(404, "Task not found");
    };
    if s.unknown_turn_list_shape {
        return axum::Json(json!({ "data": turn_values(&id, turns), "taskId": id }))
            .into_response();
    }
    axum::Json(json!({ "items": turn_values(&id, turns), "taskId": id })).into_response()
}

async fn get_worker(State(state): State<Shared>, Path(id): Path<String>, uri: Uri) -> Response {
    let s = state.lock().unwrap();
    let template = s.templates.get(&id);
    if template.is_none() && !s.workers.contains(&id) && !s.task_workers.values().any(|w| *w == id)
    {
        return error(404, "Worker not found");
    }
    // `?taskId=` (2026-07 on): the worker's state for that task, its latest turn's answer.
    let for_task = uri
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("taskId=")));
    if let Some(task_id) = for_task {
        let Some(latest) = s.tasks.get(task_id).and_then(|turns| turns.last()) else {
            return error(404, "Task not found");
        };
        let mut answer = worker_answer(&id, latest.output.as_deref().unwrap_or_default());
        answer["files"] = latest.files.clone();
        return axum::Json(answer).into_response();
    }
    let mut answer = worker_answer(&id, "last answer");
    if let (Some(Value::Object(template)), Value::Object(answer)) = (template, &mut answer) {
        for key in [
            "title",
            "summary",
            "instructions",
            "visibility",
            "outputSchema",
        ] {
            if let Some(value) = template.get(key) {
                answer.insert(key.to_owned(), value.clone());
            }
        }
    }
    axum::Json(answer).into_response()
}

/// The answer of an injected write fault, if one is queued.
fn write_fault(state: &Shared) -> Option<Response> {
    let (status, retry_after) = state.lock().unwrap().write_faults.pop_front()?;
    let mut response = error(status, "Injected failure");
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    Some(response)
}

fn next_id(state: &mut FakeState, prefix: &str) -> String {
    state.next_id += 1;
    format!("{prefix}_fake{}", state.next_id)
}

const TEMPLATE_FIELDS: [&str; 5] = [
    "instructions",
    "title",
    "summary",
    "visibility",
    "outputSchema",
];

async fn create_worker(
    State(state): State<Shared>,
    Extension(Sent(body)): Extension<Sent>,
) -> Response {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let instructions = match (text("instructions"), text("prompt")) {
        (Some(instructions), _) => instructions.to_owned(),
        (None, Some(prompt)) => format!("Instructions written from: {prompt}"),
        (None, None) => return error(422, "instructions or prompt is required"),
    };
    let mut s = state.lock().unwrap();
    let id = next_id(&mut s, "wrk");
    let template = json!({
        "id": id, "createdAt": "2026-11-29T00:00:00Z", "updatedAt": "2026-11-29T00:00:00Z",
        "instructions": instructions, "organizationId": "org_1",
        "outputSchema": body.get("outputSchema").cloned().unwrap_or(Value::Null),
        "summary": body.get("summary").cloned().unwrap_or(Value::Null),
        "title": body.get("title").cloned().unwrap_or(Value::Null),
        "url": format!("https://v3.handinger.com/worker/{id}"), "userId": "usr_1",
        "visibility": body.get("visibility").cloned().unwrap_or(json!("private"))
    });
    s.templates.insert(id, template.clone());
    axum::Json(template).into_response()
}

async fn update_worker(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Extension(Sent(body)): Extension<Sent>,
) -> Response {
    let mut s = state.lock().unwrap();
    let Some(Value::Object(template)) = s.templates.get_mut(&id) else {
        return error(404, "Worker not found");
    };
    // Only the fields sent change; `outputSchema: null` clears it.
    for key in TEMPLATE_FIELDS {
        if let Some(value) = body.get(key) {
            template.insert(key.to_owned(), value.clone());
        }
    }
    template.insert("updatedAt".into(), json!("2026-11-30T00:00:00Z"));
    axum::Json(Value::Object(template.clone())).into_response()
}

async fn delete_worker(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock().unwrap();
    let known = s.templates.remove(&id).is_some() | s.workers.remove(&id);
    if !known {
        return error(404, "Worker not found");
    }
    s.schedules.remove(&id);
    axum::Json(json!({ "deleted": true })).into_response()
}

fn worker_known(s: &FakeState, id: &str) -> bool {
    s.templates.contains_key(id) || s.workers.contains(id)
}

async fn create_schedule(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Extension(Sent(body)): Extension<Sent>,
) -> Response {
    let mut s = state.lock().unwrap();
    if !worker_known(&s, &id) {
        return error(404, "Worker not found");
    }
    let Some(when) = body.get("when").and_then(Value::as_object) else {
        return error(422, "when is required");
    };
    let kind = when.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind == "delayed" {
        let delay = when
            .get("delayInSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if !(1..=31_536_000).contains(&delay) {
            return error(422, "delayInSeconds must be between 1 and 31536000");
        }
    }
    let schedule_id = next_id(&mut s, "sch");
    // A one-off schedule runs at its date; the others next run at a fixed time here.
    let next_run_at = match (kind, when.get("date")) {
        ("scheduled", Some(date)) => date.clone(),
        _ => json!("2026-12-01T09:00:00Z"),
    };
    let mut schedule = json!({
        "id": schedule_id, "input": body.get("input"), "budget": body.get("budget"),
        "nextRunAt": next_run_at, "type": kind
    });
    // The when field flattened beside `type`, as the API reference lists it; a `scheduled`
    // one carries only `nextRunAt` (2026-07 on).
    for (key, value) in when {
        if key != "type" && key != "date" {
            schedule[key] = value.clone();
        }
    }
    s.schedules.entry(id).or_default().push(schedule.clone());
    axum::Json(schedule).into_response()
}

async fn list_schedules(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let s = state.lock().unwrap();
    if !worker_known(&s, &id) {
        return error(404, "Worker not found");
    }
    let schedules = s.schedules.get(&id).cloned().unwrap_or_default();
    axum::Json(json!({ "schedules": schedules, "workerId": id, "timezone": SCHEDULE_TIME_ZONE }))
        .into_response()
}

/// The time zone the fake says cron schedules run in.
pub const SCHEDULE_TIME_ZONE: &str = "Europe/Madrid";

async fn cancel_schedule(
    State(state): State<Shared>,
    Path((id, schedule_id)): Path<(String, String)>,
) -> Response {
    let mut s = state.lock().unwrap();
    let Some(schedules) = s.schedules.get_mut(&id) else {
        return error(404, "Schedule not found");
    };
    let before = schedules.len();
    schedules.retain(|sch| sch["id"] != schedule_id.as_str());
    if schedules.len() == before {
        return error(404, "Schedule not found");
    }
    axum::Json(json!({ "cancelled": true })).into_response()
}

async fn archive_task(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut s = state.lock().unwrap();
    if !s.tasks.contains_key(&id) {
        return error(404, "Task not found");
    }
    s.archived.insert(id);
    axum::Json(json!({ "archived": true })).into_response()
}

async fn unknown(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, &uri, &headers, Value::Null, Vec::new());
    error(404, "No such endpoint")
}

/// Accepts the request and never answers (within a test's life): a stalled file host.
async fn stall_file() -> Response {
    tokio::time::sleep(Duration::from_secs(600)).await;
    error(504, "Stalled")
}

/// Serves a file set with `serve_file_bytes`, to anyone: tests check who sent credentials.
async fn serve_file(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let Some((media_type, bytes)) = state.lock().unwrap().served_files.get(&name).cloned() else {
        return error(404, "No such file");
    };
    ([("content-type", media_type)], bytes).into_response()
}
