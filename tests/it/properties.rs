//! Property tests of the two decoders that take outside input: tool arguments from MCP
//! clients (`tools::decode` into `CreateTaskArgs` / `GetTaskArgs`) and answers from
//! Handinger (`WorkerAnswer`, `TaskAnswer`, `TurnList`).
//!
//! For each: arbitrary JSON (and arbitrary bytes) never panics, and every value that is
//! accepted decodes to exactly what was generated.

use handinger_mcp::handinger::Budget;
use handinger_mcp::handinger::types::{TaskAnswer, TurnList, WorkerAnswer};
use std::time::Duration;

use handinger_mcp::files::FileLimits;
use handinger_mcp::tools::{CreateTaskArgs, GetTaskArgs, TaskPolicy, decode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys the decoders know, mixed into generated objects so arbitrary values land on them.
const KNOWN_KEYS: &[&str] = &[
    "input",
    "budget",
    "taskId",
    "workerId",
    "files",
    "wait",
    "path",
    "name",
    "content",
    "mediaType",
    "id",
    "status",
    "running",
    "output_text",
    "structured_output",
    "sources",
    "url",
    "title",
    "usage",
    "credits",
    "durationMs",
    "error",
    "filename",
    "size",
    "task",
    "turns",
    "seq",
    "outputText",
    "structuredOutput",
    "totals",
    "turnCount",
    "workerId",
    "createdAt",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,10}",
    ]
}

/// Any JSON value, nested a few levels, with known keys often.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)), // NaN and infinities become null
        any::<String>().prop_map(Value::String),
        prop::sample::select(
            &[
                "low",
                "standard",
                "high",
                "unlimited",
                "completed",
                "running"
            ][..]
        )
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn any_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), any_json()), 0..8).prop_map(|e| e.into_iter().collect())
}

fn budget() -> impl Strategy<Value = Budget> {
    prop::sample::select(
        &[
            Budget::Low,
            Budget::Standard,
            Budget::High,
            Budget::Unlimited,
        ][..],
    )
}

/// An optional field as a client may send it: absent, `null`, or a value.
#[derive(Debug, Clone)]
enum Field<T> {
    Absent,
    Null,
    Given(T),
}

impl<T: Clone> Field<T> {
    fn value(&self) -> Option<T> {
        match self {
            Field::Given(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn put(&self, object: &mut Map<String, Value>, key: &str, to_json: impl Fn(&T) -> Value) {
        match self {
            Field::Absent => {}
            Field::Null => {
                object.insert(key.into(), Value::Null);
            }
            Field::Given(v) => {
                object.insert(key.into(), to_json(v));
            }
        }
    }
}

fn field<T: Clone + std::fmt::Debug + 'static>(
    inner: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Field<T>> {
    prop_oneof![
        Just(Field::Absent),
        Just(Field::Null),
        inner.prop_map(Field::Given),
    ]
}

/// One attachment as generated: either a path, or name + content (+ media type).
#[derive(Debug, Clone)]
struct GenFile {
    path: Option<String>,
    name: Option<String>,
    content: Option<String>,
    media_type: Option<String>,
}

/// Any string, or (as often) one of the shape that passes the later checks, so generated
/// arguments get past decoding *and* the policy.
fn text_or(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), valid]
}

/// Any string, or standard base64 of a few bytes.
fn content() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..48)
            .prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
    ]
}

fn gen_file() -> impl Strategy<Value = GenFile> {
    (
        prop::option::weighted(0.2, any::<String>()),
        prop::option::of(text_or("[a-z]{1,12}\\.(txt|csv|pdf)")),
        prop::option::of(content()),
        prop::option::weighted(0.3, text_or("(text|application)/[a-z]{1,10}")),
    )
        .prop_map(|(path, name, content, media_type)| GenFile {
            path,
            name,
            content,
            media_type,
        })
}

fn file_json(file: &GenFile) -> Value {
    let mut object = Map::new();
    for (key, value) in [
        ("path", &file.path),
        ("name", &file.name),
        ("content", &file.content),
        ("mediaType", &file.media_type),
    ] {
        if let Some(v) = value {
            object.insert(key.into(), json!(v));
        }
    }
    Value::Object(object)
}

#[derive(Debug, Clone)]
struct GenCreate {
    input: String,
    budget: Field<Budget>,
    task_id: Field<String>,
    worker_id: Field<String>,
    files: Field<Vec<GenFile>>,
}

fn gen_create() -> impl Strategy<Value = GenCreate> {
    (
        text_or("[a-zA-Z ?]{1,40}"),
        field(budget()),
        field(text_or("tsk_[A-Za-z0-9_-]{1,30}")),
        field(text_or("wrk_[A-Za-z0-9_-]{1,20}")),
        field(prop::collection::vec(gen_file(), 0..4)),
    )
        .prop_map(|(input, budget, task_id, worker_id, files)| GenCreate {
            input,
            budget,
            task_id,
            worker_id,
            files,
        })
}

impl GenCreate {
    fn to_json(&self) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("input".into(), json!(self.input));
        self.budget
            .put(&mut object, "budget", |b| json!(b.as_str()));
        self.task_id.put(&mut object, "taskId", |s| json!(s));
        self.worker_id.put(&mut object, "workerId", |s| json!(s));
        self.files.put(&mut object, "files", |f| {
            Value::Array(f.iter().map(file_json).collect())
        });
        object
    }
}

/// A generated answer file: filename, mediaType, url, size.
type GenAnswerFile = (Field<String>, Field<String>, Field<String>, Field<u32>);

/// A Worker answer as Handinger may send it, with nulls, absences and unknown fields.
#[derive(Debug, Clone)]
struct GenAnswer {
    id: Field<String>,
    output_text: Field<String>,
    status: Field<String>,
    sources: Vec<(Field<String>, Field<String>)>,
    files: Vec<GenAnswerFile>,
    extra: Vec<(String, Value)>,
}

fn gen_answer() -> impl Strategy<Value = GenAnswer> {
    (
        field(any::<String>()),
        field(any::<String>()),
        field(any::<String>()),
        prop::collection::vec((field(any::<String>()), field(any::<String>())), 0..5),
        prop::collection::vec(
            (
                field(any::<String>()),
                field(any::<String>()),
                field(any::<String>()),
                field(any::<u32>()),
            ),
            0..5,
        ),
        prop::collection::vec(("x_[a-z]{1,8}", any_json()), 0..4),
    )
        .prop_map(
            |(id, output_text, status, sources, files, extra)| GenAnswer {
                id,
                output_text,
                status,
                sources,
                files,
                extra,
            },
        )
}

impl GenAnswer {
    fn to_json(&self) -> Value {
        let mut object: Map<String, Value> = self.extra.iter().cloned().collect();
        object.insert("object".into(), json!("worker"));
        self.id.put(&mut object, "id", |s| json!(s));
        self.output_text
            .put(&mut object, "output_text", |s| json!(s));
        self.status.put(&mut object, "status", |s| json!(s));
        let sources = self.sources.iter().map(|(title, url)| {
            let mut source = Map::new();
            source.insert("type".into(), json!("url"));
            title.put(&mut source, "title", |s| json!(s));
            url.put(&mut source, "url", |s| json!(s));
            Value::Object(source)
        });
        object.insert("sources".into(), Value::Array(sources.collect()));
        let files = self.files.iter().map(|(filename, media_type, url, size)| {
            let mut file = Map::new();
            filename.put(&mut file, "filename", |s| json!(s));
            media_type.put(&mut file, "mediaType", |s| json!(s));
            url.put(&mut file, "url", |s| json!(s));
            size.put(&mut file, "size", |n| json!(n));
            Value::Object(file)
        });
        object.insert("files".into(), Value::Array(files.collect()));
        Value::Object(object)
    }
}

#[derive(Debug, Clone)]
struct GenTurn {
    seq: Field<i64>,
    status: Field<String>,
    input: Field<String>,
    output_text: Field<String>,
}

#[derive(Debug, Clone)]
struct GenRecord {
    id: Field<String>,
    status: Field<String>,
    worker_id: Field<String>,
    turn_count: Field<u32>,
    turns: Vec<GenTurn>,
}

fn gen_record() -> impl Strategy<Value = GenRecord> {
    let turn = (
        field(any::<i64>()),
        field(any::<String>()),
        field(any::<String>()),
        field(any::<String>()),
    )
        .prop_map(|(seq, status, input, output_text)| GenTurn {
            seq,
            status,
            input,
            output_text,
        });
    (
        field(any::<String>()),
        field(any::<String>()),
        field(any::<String>()),
        field(any::<u32>()),
        prop::collection::vec(turn, 0..5),
    )
        .prop_map(|(id, status, worker_id, turn_count, turns)| GenRecord {
            id,
            status,
            worker_id,
            turn_count,
            turns,
        })
}

impl GenRecord {
    fn to_json(&self) -> Value {
        let mut task = Map::new();
        self.id.put(&mut task, "id", |s| json!(s));
        self.status.put(&mut task, "status", |s| json!(s));
        self.worker_id.put(&mut task, "workerId", |s| json!(s));
        self.turn_count.put(
            &mut task,
            "totals",
            |n| json!({"turnCount": n, "credits": 1.5}),
        );
        task.insert("triggeredBy".into(), json!("api"));
        let turns = self.turns.iter().map(|t| {
            let mut turn = Map::new();
            t.seq.put(&mut turn, "seq", |n| json!(n));
            t.status.put(&mut turn, "status", |s| json!(s));
            t.input.put(&mut turn, "input", |s| json!(s));
            t.output_text.put(&mut turn, "outputText", |s| json!(s));
            turn.insert("inputTokens".into(), json!(10));
            Value::Object(turn)
        });
        json!({"task": Value::Object(task), "turns": turns.collect::<Vec<_>>()})
    }
}

/// The policy `create_task` applies after decoding, with small file limits so that
/// generated attachments hit them.
fn policy(max_budget: Budget) -> TaskPolicy {
    TaskPolicy {
        default_budget: Budget::Low,
        max_budget,
        default_worker: None,
        max_wait: Duration::from_secs(50),
        progress_interval: Duration::from_secs(5),
        max_input_bytes: 1 << 20,
        file_limits: FileLimits {
            max_files: 2,
            max_file_bytes: 64,
            max_total_bytes: 96,
        },
        local_roots: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// What passes decoding never panics the policy either, and what the policy accepts is
    /// what was asked: the input, a budget within the limit, the taskId given (or a fresh
    /// `tsk_` one), inline files only (this server takes no paths).
    #[test]
    fn the_policy_never_panics_and_keeps_what_was_asked(generated in gen_create(), max in budget()) {
        let Ok(args) = decode::<CreateTaskArgs>("create_task", generated.to_json()) else {
            return Ok(());
        };
        let Ok(prepared) = policy(max).prepare(args, None) else {
            return Ok(());
        };
        prop_assert_eq!(&prepared.request.input, &generated.input);
        prop_assert!(!generated.input.trim().is_empty());
        prop_assert!(prepared.request.budget <= max);
        match generated.task_id.value() {
            Some(asked) => prop_assert_eq!(prepared.task_id.as_str(), asked.as_str()),
            None => prop_assert!(prepared.task_id.as_str().starts_with("tsk_")),
        }
        prop_assert_eq!(&prepared.request.task_id, &prepared.task_id.to_string());
        let files = generated.files.value().unwrap_or_default();
        prop_assert_eq!(prepared.request.files.len(), files.len());
        prop_assert!(files.iter().all(|f| f.path.is_none()));
    }

    #[test]
    fn tool_argument_decoding_never_panics(object in any_object()) {
        let _ = decode::<CreateTaskArgs>("create_task", object.clone());
        let _ = decode::<GetTaskArgs>("get_task", object);
    }

    #[test]
    fn a_refused_argument_object_is_explained_with_the_tool_name(object in any_object()) {
        if let Err(message) = decode::<CreateTaskArgs>("create_task", object) {
            prop_assert!(message.starts_with("Invalid arguments for create_task: "), "{}", message);
            prop_assert!(message.ends_with("call create_task again."), "{}", message);
        }
    }

    #[test]
    fn valid_create_task_arguments_round_trip(generated in gen_create()) {
        let args = decode::<CreateTaskArgs>("create_task", generated.to_json());
        let args = args.map_err(TestCaseError::fail)?;
        prop_assert_eq!(&args.input, &generated.input);
        prop_assert_eq!(args.budget, generated.budget.value());
        prop_assert_eq!(args.task_id, generated.task_id.value());
        prop_assert_eq!(args.worker_id, generated.worker_id.value());
        let files = args.files.unwrap_or_default();
        let expected = generated.files.value().unwrap_or_default();
        prop_assert_eq!(files.len(), expected.len());
        for (got, want) in files.iter().zip(&expected) {
            prop_assert_eq!(&got.path, &want.path);
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(&got.content, &want.content);
            prop_assert_eq!(&got.media_type, &want.media_type);
        }
    }

    #[test]
    fn unknown_create_task_fields_are_refused(
        generated in gen_create(),
        extra in "[a-z]{1,12}",
        value in any_json(),
    ) {
        prop_assume!(!["input", "budget", "taskId", "workerId", "files"].contains(&extra.as_str()));
        let mut object = generated.to_json();
        object.insert(extra.clone(), value);
        let message = decode::<CreateTaskArgs>("create_task", object).unwrap_err();
        prop_assert!(message.contains(&extra), "{}", message);
    }

    #[test]
    fn valid_get_task_arguments_round_trip(task_id in any::<String>(), wait in field(any::<u64>())) {
        let mut object = Map::new();
        object.insert("taskId".into(), json!(task_id));
        wait.put(&mut object, "wait", |n| json!(n));
        let args = decode::<GetTaskArgs>("get_task", object).map_err(TestCaseError::fail)?;
        prop_assert_eq!(args.task_id, task_id);
        prop_assert_eq!(args.wait, wait.value());
    }

    #[test]
    fn answer_decoding_never_panics(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_value::<WorkerAnswer>(value.clone());
        let _ = serde_json::from_value::<TaskAnswer>(value.clone());
        let _ = serde_json::from_value::<TurnList>(value);
        let _ = serde_json::from_slice::<WorkerAnswer>(&bytes);
        let _ = serde_json::from_slice::<TaskAnswer>(&bytes);
        let _ = serde_json::from_slice::<TurnList>(&bytes);
    }

    /// One odd field never costs a finished answer: any object decodes, whatever its
    /// known fields hold.
    #[test]
    fn any_object_is_an_answer_and_a_record(object in any_object()) {
        let value = Value::Object(object);
        prop_assert!(serde_json::from_value::<WorkerAnswer>(value.clone()).is_ok());
        prop_assert!(serde_json::from_value::<TaskAnswer>(value.clone()).is_ok());
        prop_assert!(serde_json::from_value::<TurnList>(value).is_ok());
    }

    #[test]
    fn worker_answers_round_trip(generated in gen_answer()) {
        let text = generated.to_json().to_string();
        let answer: WorkerAnswer = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(answer.id, generated.id.value());
        prop_assert_eq!(answer.output_text, generated.output_text.value());
        prop_assert_eq!(answer.status, generated.status.value());
        prop_assert_eq!(answer.sources.len(), generated.sources.len());
        for (got, (title, url)) in answer.sources.iter().zip(&generated.sources) {
            prop_assert_eq!(&got.title, &title.value());
            prop_assert_eq!(&got.url, &url.value());
        }
        prop_assert_eq!(answer.files.len(), generated.files.len());
        for (got, (filename, media_type, url, size)) in answer.files.iter().zip(&generated.files) {
            prop_assert_eq!(&got.filename, &filename.value());
            prop_assert_eq!(&got.media_type, &media_type.value());
            prop_assert_eq!(&got.url, &url.value());
            prop_assert_eq!(got.size, size.value().map(f64::from));
        }
    }

    #[test]
    fn task_records_round_trip(generated in gen_record()) {
        let text = generated.to_json().to_string();
        let record: TaskAnswer = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let turns = record.turns.unwrap_or_default();
        prop_assert_eq!(record.task.id, generated.id.value());
        prop_assert_eq!(record.task.status, generated.status.value());
        prop_assert_eq!(record.task.worker_id, generated.worker_id.value());
        prop_assert_eq!(
            record.task.totals.and_then(|t| t.turn_count),
            generated.turn_count.value().map(u64::from)
        );
        prop_assert_eq!(turns.len(), generated.turns.len());
        for (got, want) in turns.iter().zip(&generated.turns) {
            prop_assert_eq!(got.seq, want.seq.value());
            prop_assert_eq!(&got.status, &want.status.value());
            prop_assert_eq!(&got.input, &want.input.value());
            prop_assert_eq!(&got.output_text, &want.output_text.value());
        }
    }
}
