//! The `schedules` toolset: `create_schedule`, `list_schedules`, `cancel_schedule`.
//!
//! A schedule makes a worker run a task by itself: once (at a date, or after a delay) or
//! repeatedly (cron, interval). Each run spends credits, so the budget guard of `create_task`
//! (`--max-budget`) applies here too.

use rmcp::handler::server::common::schema_for_output;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::call::{Call, Reply, answer};
use super::change::{CancelledSchedule, Change};
use super::output::timestamp;
use super::reply::{AfterFailure, list_check, required_id, required_text, structured, worker_id};
use super::tasks::input_schema;
use super::{HandingerServer, TaskPolicy};
use crate::handinger::Budget;
use crate::handinger::types::{MAX_DELAY_SECONDS, NewSchedule, ScheduleInfo, When};

const SCHEDULE_ID_EXAMPLE: &str = "sch_01HZY31W2SZJ8MJ2FQTR3M1K9D";

/// Arguments of `create_schedule`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CreateScheduleArgs {
    /// The worker that runs the task (an id like wrk_vk81XUHKHG-qr4).
    pub worker_id: String,
    /// What the worker should do on each run, in plain language, with everything it needs:
    /// it runs without anyone to ask.
    pub input: String,
    /// Compute budget of each run. low: quick lookups; standard: most tasks; high: multi-step
    /// research; unlimited: no spend cap. Omit it to use the server's default.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// When to run. Once: {"type": "scheduled", "date": "2026-12-01T09:00:00Z"} or
    /// {"type": "delayed", "delayInSeconds": 3600}. Repeatedly: {"type": "cron", "cron":
    /// "0 9 * * 1-5"} or {"type": "interval", "intervalSeconds": 86400}.
    pub when: When,
}

/// Arguments of `list_schedules`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ListSchedulesArgs {
    /// The worker whose schedules to list (an id like wrk_vk81XUHKHG-qr4).
    pub worker_id: String,
}

/// Arguments of `cancel_schedule`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CancelScheduleArgs {
    /// The worker the schedule belongs to.
    pub worker_id: String,
    /// The schedule to cancel, as create_schedule or list_schedules returned it (sch_…).
    pub schedule_id: String,
}

/// A schedule as the schedule tools report it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScheduleView {
    /// Pass this as scheduleId to cancel_schedule.
    pub schedule_id: Option<String>,
    /// scheduled, delayed, cron or interval.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// When it runs: the date, delayInSeconds, cron or intervalSeconds, with its type.
    pub when: Option<Map<String, Value>>,
    /// When it runs next, as Handinger reports it (a date, or unix seconds).
    pub next_run_at: Option<String>,
    /// What the worker is asked on each run.
    pub input: Option<String>,
    /// The compute budget of each run.
    pub budget: Option<String>,
}

/// What `create_schedule` returns.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreatedSchedule {
    pub worker_id: String,
    pub schedule: ScheduleView,
}

/// What `list_schedules` returns.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScheduleListView {
    pub worker_id: String,
    /// The time zone the worker's cron schedules run in (an IANA name such as Europe/Madrid),
    /// when Handinger says.
    pub timezone: Option<String>,
    pub schedules: Vec<ScheduleView>,
}

impl From<ScheduleInfo> for ScheduleView {
    fn from(info: ScheduleInfo) -> Self {
        // The when part comes nested (`when: {...}`) or flattened beside `type`.
        let nested = match info.when {
            Some(Value::Object(when)) => Some(when),
            _ => None,
        };
        let when = nested.or_else(|| {
            let mut when = serde_json::Map::new();
            if let Some(kind) = &info.kind {
                when.insert("type".into(), json!(kind));
            }
            // A `scheduled` schedule comes back with only `nextRunAt`: that is its date.
            let date = info.date.or_else(|| {
                (info.kind.as_deref() == Some("scheduled"))
                    .then(|| info.next_run_at.clone())
                    .flatten()
            });
            for (key, value) in [
                ("date", date),
                ("delayInSeconds", info.delay_in_seconds),
                ("cron", info.cron),
                ("intervalSeconds", info.interval_seconds),
            ] {
                if let Some(value) = value {
                    when.insert(key.into(), value);
                }
            }
            (when.len() > usize::from(info.kind.is_some())).then_some(when)
        });
        let kind = info.kind.or_else(|| {
            when.as_ref()
                .and_then(|w| w.get("type"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        ScheduleView {
            schedule_id: info.id,
            kind,
            when,
            next_run_at: timestamp(info.next_run_at.as_ref()),
            input: info.input,
            budget: info.budget,
        }
    }
}

impl CreatedSchedule {
    /// One line on the new schedule, for the text block.
    fn summary(&self) -> String {
        let schedule = &self.schedule;
        let next_run = schedule.next_run_at.as_ref();
        format!(
            "Scheduled worker {}: schedule {}{}.",
            self.worker_id,
            schedule
                .schedule_id
                .as_deref()
                .unwrap_or("(no id returned)"),
            next_run
                .map(|at| format!(", next run {at}"))
                .unwrap_or_default()
        )
    }
}

impl ScheduleListView {
    /// How many schedules `worker_id` has, and the time zone its cron expressions run in.
    fn summary(&self, worker_id: &str) -> String {
        let mut summary = match self.schedules.len() {
            0 => format!("Worker {worker_id} has no schedules."),
            1 => format!("Worker {worker_id} has 1 schedule."),
            n => format!("Worker {worker_id} has {n} schedules."),
        };
        if let Some(zone) = &self.timezone {
            summary.push_str(&format!(" Cron expressions run in the {zone} time zone."));
        }
        summary
    }
}

#[tool_router(router = schedule_tools, vis = "pub(super)")]
impl HandingerServer {
    #[tool(
        name = "create_schedule",
        title = "Schedule a Handinger worker",
        description = "Make a Handinger worker run a task by itself: once at a date, once after a \
delay, or repeatedly on a cron expression or an interval. Returns the schedule with its \
scheduleId and next run. Every run spends credits according to the budget; results appear \
in the Handinger dashboard (and the worker's webhook, if it has one), not in this chat.",
        input_schema = input_schema::<CreateScheduleArgs>(),
        output_schema = schema_for_output::<CreatedSchedule>()
    )]
    pub(super) async fn create_schedule_tool(&self, call: Call<CreateScheduleArgs>) -> Reply {
        let schedule = call
            .args
            .and_then(|args| new_schedule(args, &self.services.policy));
        self.api_call(&call.context, schedule, |api, (worker_id, schedule)| async move {
            let what = format!("create_schedule on workerId {worker_id}");
            let check = list_check(&worker_id);
            let created = api.create_schedule(&worker_id, &schedule).await;
            answer(created, &what, AfterFailure::Creation { check: &check }, |info| {
                let view = CreatedSchedule {
                    worker_id,
                    schedule: info.into(),
                };
                let schedule_id = &view.schedule.schedule_id;
                tracing::info!(worker_id = %view.worker_id, ?schedule_id, "create_schedule");
                structured(view.summary(), &view)
            })
        })
        .await
    }

    #[tool(
        name = "list_schedules",
        title = "List a Handinger worker's schedules",
        description = "List the schedules of a Handinger worker: for each, its scheduleId, kind \
(scheduled, delayed, cron, interval), timing, next run, input and budget.",
        input_schema = input_schema::<ListSchedulesArgs>(),
        output_schema = schema_for_output::<ScheduleListView>()
    )]
    pub(super) async fn list_schedules_tool(&self, call: Call<ListSchedulesArgs>) -> Reply {
        let worker_id = call.args.and_then(|args| worker_id(args.worker_id));
        self.api_call(&call.context, worker_id, |api, worker_id| async move {
            let what = format!("list_schedules for workerId {worker_id}");
            let found = api.list_schedules(&worker_id).await;
            answer(found, &what, AfterFailure::Read, |list| {
                let view = ScheduleListView {
                    worker_id: list.worker_id.unwrap_or_else(|| worker_id.clone()),
                    timezone: list.timezone,
                    schedules: list.schedules.into_iter().map(Into::into).collect(),
                };
                structured(view.summary(&worker_id), &view)
            })
        })
        .await
    }

    #[tool(
        name = "cancel_schedule",
        title = "Cancel a Handinger schedule",
        description = "Cancel a schedule of a Handinger worker so it runs no more. A run already \
started keeps going. This cannot be undone: to run again, create a new schedule.",
        input_schema = input_schema::<CancelScheduleArgs>(),
        output_schema = schema_for_output::<CancelledSchedule>()
    )]
    pub(super) async fn cancel_schedule_tool(&self, call: Call<CancelScheduleArgs>) -> Reply {
        let change = call.args.and_then(|args| {
            let worker_id = worker_id(args.worker_id)?;
            required_id(&args.schedule_id, "scheduleId", SCHEDULE_ID_EXAMPLE)?;
            let schedule_id = args.schedule_id;
            Ok(Change::CancelSchedule {
                worker_id,
                schedule_id,
            })
        });
        self.apply(&call.context, change).await
    }
}

/// Checks `create_schedule` arguments and applies the budget policy.
fn new_schedule(
    args: CreateScheduleArgs,
    policy: &TaskPolicy,
) -> Result<(String, NewSchedule), String> {
    let worker_id = worker_id(args.worker_id)?;
    required_text(
        &args.input,
        "input",
        "say what the worker should do on each run",
    )?;
    policy.check_input_size(
        &args.input,
        "shorten it (every run of the schedule is a task with this input)",
    )?;
    check_when(&args.when)?;
    let budget = policy.budget(args.budget)?;
    Ok((
        worker_id,
        NewSchedule {
            input: args.input,
            budget,
            when: args.when,
        },
    ))
}

/// Catches the timing mistakes Handinger would refuse, with what to send instead.
fn check_when(when: &When) -> Result<(), String> {
    match when {
        When::Delayed { delay_in_seconds }
            if !(1..=MAX_DELAY_SECONDS).contains(delay_in_seconds) =>
        {
            Err(format!(
                "when.delayInSeconds is {delay_in_seconds}; it must be 1 to {MAX_DELAY_SECONDS} (a year). For a later date use {{\"type\": \"scheduled\", \"date\": \"…\"}}."
            ))
        }
        When::Interval {
            interval_seconds: 0,
        } => Err("when.intervalSeconds must be at least 1.".into()),
        When::Scheduled { date } if !looks_like_a_date(date) => Err(format!(
            "when.date {date:?} is not an ISO 8601 date and time: use e.g. \"2026-12-01T09:00:00Z\"."
        )),
        When::Cron { cron } if !(5..=6).contains(&cron.split_whitespace().count()) => Err(format!(
            "when.cron {cron:?} is not a cron expression: use five fields (minute hour day-of-month month day-of-week), e.g. \"0 9 * * 1-5\"."
        )),
        _ => Ok(()),
    }
}

/// `YYYY-MM-DD` followed by a time: a loose check, Handinger has the last word.
fn looks_like_a_date(date: &str) -> bool {
    let bytes = date.trim().as_bytes();
    bytes.len() >= 16
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'-'
        && bytes[8..10].iter().all(u8::is_ascii_digit)
        && matches!(bytes[10], b'T' | b't' | b' ')
}

/// A JSON value as plain text (strings without their quotes).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_mistakes_are_caught() {
        let delay = |s| When::Delayed {
            delay_in_seconds: s,
        };
        assert!(check_when(&delay(0)).is_err());
        assert!(check_when(&delay(1)).is_ok());
        assert!(check_when(&delay(31_536_000)).is_ok());
        assert!(
            check_when(&delay(31_536_001))
                .unwrap_err()
                .contains("31536000")
        );
        let date = |d: &str| When::Scheduled { date: d.into() };
        assert!(check_when(&date("2026-12-01T09:00:00Z")).is_ok());
        assert!(check_when(&date("tomorrow")).is_err());
        let cron = |c: &str| When::Cron { cron: c.into() };
        assert!(check_when(&cron("0 9 * * 1-5")).is_ok());
        assert!(check_when(&cron("every day")).is_err());
    }

    #[test]
    fn flattened_and_nested_timing_both_show() {
        let flat: ScheduleInfo = serde_json::from_value(
            json!({"id": "sch_1", "type": "cron", "cron": "0 9 * * *", "nextRunAt": "x"}),
        )
        .unwrap();
        let view = ScheduleView::from(flat);
        assert_eq!(view.kind.as_deref(), Some("cron"));
        assert_eq!(
            view.when.map(Value::Object),
            Some(json!({"type": "cron", "cron": "0 9 * * *"}))
        );
        let nested: ScheduleInfo = serde_json::from_value(
            json!({"id": "sch_2", "when": {"type": "interval", "intervalSeconds": 60}}),
        )
        .unwrap();
        assert_eq!(ScheduleView::from(nested).kind.as_deref(), Some("interval"));
    }
}
