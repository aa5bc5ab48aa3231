//! Which tools a server lists: the toolsets, `--read-only`, and the named workers.
//!
//! The default surface is small on purpose (`create_task`, `get_task`): every tool costs the
//! model context and a chance to pick the wrong one. The other groups are switched on by
//! name. Named workers (`--worker fact_checker=wrk_…`) each become an `ask_<name>` tool whose
//! description is the worker's own title and summary, fetched once at start.

use std::collections::HashSet;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool_name_validation::validate_and_warn_tool_name;

use super::{HandingerServer, effect};
use crate::handinger::HandingerClient;
use crate::task_id::validate_id;

/// How long start-up waits for the named workers' titles and summaries before describing
/// them from their names instead. A client is waiting for `initialize` meanwhile.
const DESCRIBE_LIMIT: Duration = Duration::from_secs(10);
/// Longest worker title and summary put into a tool description.
const MAX_TITLE_CHARS: usize = 200;
const MAX_SUMMARY_CHARS: usize = 1000;
/// Every named worker's tool is this prefix plus its name.
pub(super) const ASK_PREFIX: &str = "ask_";

/// A group of tools switched on together with `--toolsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Toolset {
    /// create_task, get_task.
    Tasks,
    /// create_worker, get_worker, update_worker.
    Workers,
    /// create_schedule, list_schedules, cancel_schedule.
    Schedules,
    /// delete_worker, archive_task: destructive, so never on by default.
    Admin,
}

impl Toolset {
    pub const ALL: [Toolset; 4] = [
        Toolset::Tasks,
        Toolset::Workers,
        Toolset::Schedules,
        Toolset::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Tasks => "tasks",
            Toolset::Workers => "workers",
            Toolset::Schedules => "schedules",
            Toolset::Admin => "admin",
        }
    }

    /// This toolset's tools, each annotated with what it does.
    fn router(self) -> ToolRouter<HandingerServer> {
        effect::annotate(match self {
            Toolset::Tasks => HandingerServer::task_tools(),
            Toolset::Workers => HandingerServer::worker_tools(),
            Toolset::Schedules => HandingerServer::schedule_tools(),
            Toolset::Admin => HandingerServer::admin_tools(),
        })
    }
}

impl std::fmt::Display for Toolset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `--toolsets all` serves: every toolset but `admin`. Its tools cannot be undone, so
/// they are served only when `admin` is named (`--toolsets all,admin`); a broad word must not
/// hand a model a delete button.
pub(super) const ALL_BUT_ADMIN: [Toolset; 3] =
    [Toolset::Tasks, Toolset::Workers, Toolset::Schedules];

/// One entry of `--toolsets`: a toolset, or `all` (every one but `admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsetChoice(pub Vec<Toolset>);

/// Parses one entry of `--toolsets`; the error lists the valid names.
pub fn parse_toolsets(raw: &str) -> Result<ToolsetChoice, String> {
    let name = raw.trim().to_ascii_lowercase();
    if name == "all" {
        return Ok(ToolsetChoice(ALL_BUT_ADMIN.to_vec()));
    }
    Toolset::ALL
        .into_iter()
        .find(|t| t.as_str() == name)
        .map(|t| ToolsetChoice(vec![t]))
        .ok_or_else(|| {
            format!(
                "unknown toolset {raw:?}: the toolsets are {} (or all, which is every one but admin)",
                Toolset::ALL.map(Toolset::as_str).join(", ")
            )
        })
}

/// A worker served as its own tool: `--worker NAME=WORKER_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedWorker {
    pub name: String,
    pub worker_id: String,
}

impl NamedWorker {
    /// Parses `NAME=WORKER_ID`; the error says what a good one looks like.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let Some((name, worker_id)) = raw.split_once('=') else {
            return Err(format!(
                "{raw:?} is not NAME=WORKER_ID: name the worker, e.g. fact_checker=wrk_vk81XUHKHG-qr4"
            ));
        };
        let (name, worker_id) = (name.trim(), worker_id.trim());
        let worker = NamedWorker {
            name: name.to_owned(),
            worker_id: worker_id.to_owned(),
        };
        check_tool_name(&worker.tool_name()).map_err(|problem| {
            format!(
                "the worker name {name:?} cannot be used: its tool name {:?} {problem}; MCP tool names are 1 to 128 characters of letters, digits, '_', '-' and '.' (e.g. fact_checker=wrk_vk81XUHKHG-qr4)",
                worker.tool_name()
            )
        })?;
        validate_id(worker_id, &format!("the worker id of {name:?}")).map_err(|e| {
            format!("{e} (expected NAME=WORKER_ID, e.g. {name}=wrk_vk81XUHKHG-qr4)")
        })?;
        Ok(worker)
    }

    /// The tool that runs tasks on this worker.
    pub fn tool_name(&self) -> String {
        format!("{ASK_PREFIX}{}", self.name)
    }
}

/// Checks a tool name against the MCP tool-name rules: 1 to 128 characters of
/// `A-Z a-z 0-9 _ - .`. `Err` says which rule it breaks.
pub(super) fn check_tool_name(name: &str) -> Result<(), String> {
    if name.len() > 128 {
        return Err(format!("is {} characters long", name.len()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!("contains {bad:?}"));
    }
    if name.is_empty() || name == ASK_PREFIX {
        return Err("has no name after ask_".into());
    }
    // rmcp's own check agrees (and logs any softer warnings, such as a trailing dot).
    if !validate_and_warn_tool_name(name) {
        return Err("breaks the MCP tool-name rules".into());
    }
    Ok(())
}

/// Everything that decides the tool list: the toolsets, `--read-only`, and the named
/// workers, as given ([`ToolSettings`]) or described ([`ToolSurface`]).
#[derive(Debug, Clone)]
pub struct Tools<W> {
    /// Sorted, without repeats.
    pub toolsets: Vec<Toolset>,
    pub read_only: bool,
    pub workers: Vec<W>,
}

/// The tool settings as given: checked, but the named workers not yet described.
pub type ToolSettings = Tools<NamedWorker>;

/// The tool settings with the named workers described: what the server lists.
pub type ToolSurface = Tools<WorkerCard>;

impl<W> Default for Tools<W> {
    /// The default settings: the `tasks` toolset only.
    fn default() -> Self {
        Tools {
            toolsets: vec![Toolset::Tasks],
            read_only: false,
            workers: Vec::new(),
        }
    }
}

impl<W> Tools<W> {
    pub fn has(&self, toolset: Toolset) -> bool {
        self.toolsets.contains(&toolset)
    }

    /// Whether the named workers' tools are served (they start tasks, so not when read-only).
    pub fn serves_named_workers(&self) -> bool {
        !self.read_only && !self.workers.is_empty()
    }
}

impl ToolSettings {
    /// Checks the settings together; duplicate worker names are refused.
    pub fn new(
        toolsets: Vec<ToolsetChoice>,
        read_only: bool,
        workers: Vec<NamedWorker>,
    ) -> Result<Self, String> {
        let mut toolsets: Vec<Toolset> = toolsets.into_iter().flat_map(|c| c.0).collect();
        toolsets.sort_unstable();
        toolsets.dedup();
        let mut seen = HashSet::new();
        for worker in &workers {
            if !seen.insert(worker.name.as_str()) {
                return Err(format!(
                    "the worker name {:?} is given twice (--worker / HANDINGER_MCP_WORKERS / the config file's [workers]): each name becomes the tool {}, so names must differ",
                    worker.name,
                    worker.tool_name()
                ));
            }
        }
        Ok(Tools {
            toolsets,
            read_only,
            workers,
        })
    }

    /// Fetches each named worker's title and summary (`GET /api/workers/{id}`), all at once
    /// and bounded in time. Without `api` (no key), or when a fetch fails, the worker is
    /// described from its name, with a warning.
    pub async fn describe(self, api: Option<&HandingerClient>) -> ToolSurface {
        let fetches = self.workers.into_iter().map(|worker| async move {
            let Some(api) = api else {
                return WorkerCard::from_name(worker);
            };
            let fetched = tokio::time::timeout(DESCRIBE_LIMIT, api.get_worker(&worker.worker_id));
            match fetched.await {
                Ok(Ok(info)) => WorkerCard {
                    title: clean(info.title, MAX_TITLE_CHARS),
                    summary: clean(info.summary, MAX_SUMMARY_CHARS),
                    worker,
                },
                Ok(Err(error)) => {
                    tracing::warn!(
                        tool = %worker.tool_name(), worker_id = %worker.worker_id, %error,
                        "could not fetch the worker's title and summary; describing the tool from its name. {}",
                        error.hint()
                    );
                    WorkerCard::from_name(worker)
                }
                Err(_) => {
                    tracing::warn!(
                        tool = %worker.tool_name(), worker_id = %worker.worker_id,
                        "no answer about the worker within {} s; describing the tool from its name",
                        DESCRIBE_LIMIT.as_secs()
                    );
                    WorkerCard::from_name(worker)
                }
            }
        });
        Tools {
            toolsets: self.toolsets,
            read_only: self.read_only,
            workers: futures::future::join_all(fetches).await,
        }
    }
}

fn clean(text: Option<String>, max_chars: usize) -> Option<String> {
    let text = text?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(max_chars).collect())
}

/// A named worker with what the model is told about it.
#[derive(Debug, Clone)]
pub struct WorkerCard {
    pub worker: NamedWorker,
    pub title: Option<String>,
    pub summary: Option<String>,
}

impl WorkerCard {
    pub fn from_name(worker: NamedWorker) -> Self {
        WorkerCard {
            worker,
            title: None,
            summary: None,
        }
    }

    /// "Title: summary" when Handinger told us, or a sentence built from the name.
    pub fn about(&self) -> String {
        match (&self.title, &self.summary) {
            (Some(title), Some(summary)) => format!("{title}: {summary}"),
            (Some(only), None) | (None, Some(only)) => only.clone(),
            (None, None) => format!(
                "The Handinger worker \"{}\" ({}).",
                self.worker.name.replace(['_', '-', '.'], " "),
                self.worker.worker_id
            ),
        }
    }
}

/// A named worker (`--worker NAME=…`) whose `ask_<name>` tool would take the name of a
/// tool already served.
#[derive(Debug, thiserror::Error)]
#[error(
    "the named worker {worker:?} would be served as {tool}, which is already a tool: pick another name"
)]
pub struct ToolNameTaken {
    pub worker: String,
    pub tool: String,
}

impl ToolSurface {
    /// The router of every tool this surface lists. A named worker whose tool name is
    /// already taken is refused.
    pub(super) fn router(&self) -> Result<ToolRouter<HandingerServer>, ToolNameTaken> {
        let mut router = ToolRouter::new();
        for toolset in &self.toolsets {
            router += toolset.router();
        }
        if self.serves_named_workers() && !router.has_route("get_task") {
            // ask_<name> results point at get_task to collect a long answer.
            let tasks = Toolset::Tasks.router();
            if let Some(get_task) = tasks.map.get("get_task") {
                router.add_route(get_task.clone());
            }
        }
        if self.read_only {
            if !self.workers.is_empty() {
                tracing::warn!(
                    count = self.workers.len(),
                    "--read-only: the named workers' ask_ tools start tasks, so they are not served"
                );
            }
            let writers: Vec<String> = router
                .list_all()
                .into_iter()
                .filter(|tool| {
                    tool.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true)
                })
                .map(|tool| tool.name.into_owned())
                .collect();
            for name in writers {
                router.remove_route(&name);
            }
            return Ok(router);
        }
        for card in &self.workers {
            let name = card.worker.tool_name();
            if router.has_route(&name) {
                return Err(ToolNameTaken {
                    worker: card.worker.name.clone(),
                    tool: name,
                });
            }
            router.add_route(HandingerServer::ask_route(card));
        }
        Ok(router)
    }

    /// The server instructions for this surface: how the served tools fit together.
    pub(super) fn instructions(&self, tasks_instructions: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.has(Toolset::Tasks) && !self.read_only {
            parts.push(tasks_instructions.to_owned());
        } else if self.has(Toolset::Tasks) || self.serves_named_workers() {
            parts.push(
                "Hand work to Handinger AI workers. get_task looks a task up by its taskId and, \
with wait, collects an answer that is still running."
                    .to_owned(),
            );
        } else {
            parts.push("Manage Handinger AI workers.".to_owned());
        }
        if self.serves_named_workers() {
            parts.push(
                "Each ask_<name> tool runs a task on one of the user's own workers: call it with \
just input; pass the taskId of its result to follow up."
                    .to_owned(),
            );
        }
        if self.has(Toolset::Workers) {
            parts.push(if self.read_only {
                "get_worker shows a worker's instructions, output schema and latest answer."
                    .to_owned()
            } else {
                "create_worker, get_worker and update_worker manage reusable workers \
(instructions, output schema); pass a worker's id as workerId to create_task."
                    .to_owned()
            });
        }
        if self.has(Toolset::Schedules) {
            parts.push(if self.read_only {
                "list_schedules shows when a worker runs by itself.".to_owned()
            } else {
                "create_schedule runs a worker later or repeatedly (a date, a delay, cron or an \
interval); list_schedules and cancel_schedule manage them."
                    .to_owned()
            });
        }
        if self.has(Toolset::Admin) && !self.read_only {
            parts.push(
                "delete_worker and archive_task cannot be undone: use them only when the user \
asks for exactly that."
                    .to_owned(),
            );
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolset_names_and_all() {
        assert_eq!(parse_toolsets(" Workers ").unwrap().0, [Toolset::Workers]);
        assert_eq!(
            parse_toolsets("all").unwrap().0,
            [Toolset::Tasks, Toolset::Workers, Toolset::Schedules],
            "all leaves the destructive admin tools out"
        );
        let err = parse_toolsets("repos").unwrap_err();
        assert!(err.contains("tasks, workers, schedules, admin"), "{err}");
    }

    #[test]
    fn named_workers_are_checked() {
        let ok = NamedWorker::parse("fact_checker=wrk_vk81XUHKHG-qr4").unwrap();
        assert_eq!(ok.tool_name(), "ask_fact_checker");
        assert_eq!(ok.worker_id, "wrk_vk81XUHKHG-qr4");
        for (bad, says) in [
            ("fact checker=wrk_1", "' '"),
            ("=wrk_1", "no name"),
            ("x=", "empty"),
            ("x=../y", "'/'"),
            ("nameonly", "NAME=WORKER_ID"),
            ("résumé=wrk_1", "'é'"),
        ] {
            let err = NamedWorker::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let long = format!("{}=wrk_1", "n".repeat(125));
        assert!(
            NamedWorker::parse(&long)
                .unwrap_err()
                .contains("129 characters")
        );
        assert!(NamedWorker::parse(&format!("{}=wrk_1", "n".repeat(124))).is_ok());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let w = |s: &str| NamedWorker::parse(s).unwrap();
        let err = ToolSettings::new(vec![], false, vec![w("a=wrk_1"), w("a=wrk_2")]).unwrap_err();
        assert!(err.contains("\"a\"") && err.contains("twice"), "{err}");
    }

    #[test]
    fn fallback_description_uses_the_name() {
        let card = WorkerCard::from_name(NamedWorker::parse("fact_checker=wrk_1").unwrap());
        assert_eq!(
            card.about(),
            "The Handinger worker \"fact checker\" (wrk_1)."
        );
    }
}
