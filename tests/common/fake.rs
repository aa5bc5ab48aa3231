//! A stand-in for Handinger's HTTP API that behaves like the documented one (auth, tasks with
//! turns, `GET /api/tasks/{id}`), records everything it receives, and injects faults on demand.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    /// Record the turn, send the headers, then break the connection mid-body.
    Cut,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub input: String,
    pub status: String,
    pub output: Option<String>,
}

#[derive(Default)]
pub struct FakeState {
    pub received: Vec<Received>,
    pub tasks: HashMap<String, Vec<TurnRecord>>,
    pub task_workers: HashMap<String, String>,
    pub faults: VecDeque<Fault>,
    /// How long each turn "runs" before the POST answers.
    pub turn_duration: Duration,
    /// Keys accepted besides [`API_KEY`] (other users' keys, for per-user key tests).
    pub extra_keys: Vec<String>,
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
        let app = Router::new()
            .route("/api/tasks", post(create_task))
            .route("/api/tasks/{id}", get(get_task))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeHandinger { base_url, state }
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Accepts `key` as a valid API key too.
    pub fn accept_key(&self, key: &str) {
        self.state.lock().unwrap().extra_keys.push(key.to_owned());
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

type Shared = Arc<Mutex<FakeState>>;

fn record(state: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: Value) {
    state.lock().unwrap().received.push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    });
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

async fn create_task(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&state, &method, &uri, &headers, body.clone());
    if !authorized(&state, &headers) {
        return error(401, "Invalid API key");
    }
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
        (s.faults.pop_front(), s.turn_duration)
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
        Some(Fault::Malformed) => {
            return (StatusCode::OK, "<html>Sign in</html>").into_response();
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
        });
        turns.len()
    };
    tokio::time::sleep(duration).await;
    let output = format!("answer to: {input} (turn {turn})");
    {
        let mut s = state.lock().unwrap();
        if let Some(record) = s.tasks.get_mut(&task_id).and_then(|t| t.get_mut(turn - 1)) {
            record.status = "completed".into();
            record.output = Some(output.clone());
        }
    }
    match fault {
        Some(Fault::RecordThenStatus(status)) => error(status, "Bad gateway"),
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
        _ => axum::Json(worker_answer(&worker_id, &output)).into_response(),
    }
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
        "usage": {"credits": 3, "durationMs": 1200},
        "url": format!("https://v3.handinger.com/worker/{worker_id}"),
        "messages": [],
        "metadata": {},
        "incomplete_details": null,
        "some_future_field": {"nested": true}
    })
}

async fn get_task(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, &uri, &headers, Value::Null);
    if !authorized(&state, &headers) {
        return error(401, "Invalid API key");
    }
    let s = state.lock().unwrap();
    let Some(turns) = s.tasks.get(&id) else {
        return error(404, "Task not found");
    };
    let status = turns
        .last()
        .map(|t| t.status.clone())
        .unwrap_or_else(|| "pending".into());
    let turns: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "id": format!("trn_{i}"), "seq": i + 1, "taskId": id, "role": "user",
                "status": t.status, "input": t.input, "outputText": t.output,
                "structuredOutput": null, "credits": 3, "durationMs": 1200,
                "inputTokens": 10, "outputTokens": 20, "startedAt": "2026-11-29T00:00:00Z",
                "completedAt": null
            })
        })
        .collect();
    axum::Json(json!({
        "task": {
            "id": id, "status": status, "title": "A test task",
            "totals": {"credits": 3 * turns.len(), "durationMs": 1200, "turnCount": turns.len()},
            "triggeredBy": "api", "url": format!("https://v3.handinger.com/task/{id}"),
            "workerId": s.task_workers.get(&id), "organizationId": "org_1",
            "createdByUserId": "usr_1", "createdAt": "2026-11-29T00:00:00Z", "completedAt": null
        },
        "turns": turns
    }))
    .into_response()
}

async fn unknown(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&state, &method, &uri, &headers, Value::Null);
    error(404, "No such endpoint")
}
