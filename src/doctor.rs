//! `handinger-mcp doctor`: is this setup going to work, and if not, what to change.
//!
//! It checks, one line each: the key is set; the HTTPS client can be set up (the system's
//! CA certificates load); which proxy (if any) reaches the base URL; the
//! base URL answers like the Handinger API; the key is accepted; the default worker and the
//! named workers (`--worker NAME=WORKER_ID`) exist.
//! Then it prints the client configuration for this binary ([`crate::client_config`]).
//!
//! The key check is a cheap authenticated read that cannot change anything:
//! `GET /api/tasks/<fresh tsk_ id>`. Nobody has used a freshly generated id, so Handinger
//! answers 404 when it accepts the key, 401 when it refuses it, and 403 when the key has no
//! API access. Doctor runs without a key (it reports that as a problem) and never prints it.

use std::net::IpAddr;

use crate::client_config::ClientConfig;
use crate::config::API_KEY_VAR;
use crate::handinger::{ApiError, HandingerClient};
use crate::redact::mask_credentials;
use crate::task_id::TaskId;
use crate::tools::{NamedWorker, TaskPolicy, ToolSettings};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// Something to fix; doctor exits non-zero.
    Problem,
    /// Could not be checked because an earlier check failed (that one is the problem).
    Skipped,
    /// Worth knowing, nothing to check.
    Info,
}

/// One line of the report: `<status> <check>: <finding>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub status: Status,
    pub check: &'static str,
    pub detail: String,
}

impl Finding {
    fn new(status: Status, check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            status,
            check,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.status {
            Status::Ok => "ok",
            Status::Problem => "PROBLEM",
            Status::Skipped => "skipped",
            Status::Info => "info",
        };
        write!(f, "{label:<8} {}: {}", self.check, self.detail)
    }
}

/// How many checks found a problem (at least one).
#[derive(Debug, Clone, Copy)]
pub struct Problems(pub usize);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Problems(problems) = *self;
        write!(
            f,
            "doctor found {problems} problem{}: fix {} as the PROBLEM line{} above say{}, then run handinger-mcp doctor again",
            plural(problems),
            if problems == 1 { "it" } else { "them" },
            plural(problems),
            if problems == 1 { "s" } else { "" },
        )
    }
}

impl std::error::Error for Problems {}

/// Runs every check, prints the report and the client configuration; `Err` when a check
/// found a problem.
pub(crate) async fn run(
    api: &HandingerClient,
    key_given: bool,
    policy: &TaskPolicy,
    tools: &ToolSettings,
    store: Option<&crate::turns::store::TurnStore>,
) -> Result<(), Problems> {
    let mut findings = Vec::new();
    let mut report = |finding: Finding| {
        emit(&finding.to_string());
        findings.push(finding);
    };
    emit(&format!(
        "handinger-mcp {} doctor: checking {}",
        env!("CARGO_PKG_VERSION"),
        api.base_url()
    ));

    report(if key_given {
        Finding::new(Status::Ok, "api key", format!("{API_KEY_VAR} is set"))
    } else {
        Finding::new(
            Status::Problem,
            "api key",
            format!(
                "{API_KEY_VAR} is not set: export {API_KEY_VAR}=hdg_live_… (your Handinger API key, from the Handinger dashboard) in the environment the client starts handinger-mcp from"
            ),
        )
    });
    if let Some(store) = store {
        report(match store.ping().await {
            Ok(()) => Finding::new(
                Status::Ok,
                "turn store",
                format!(
                    "{} answers: replicas share turns and answers",
                    store.display()
                ),
            ),
            Err(error) => Finding::new(
                Status::Problem,
                "turn store",
                format!(
                    "{error}: start it, or check --store / HANDINGER_MCP_STORE (create_task refuses to run without it)"
                ),
            ),
        });
    }
    report(proxy_finding(api.base_url(), &|name| {
        std::env::var(name).ok()
    }));

    // The HTTPS client is built in the background at start-up; a broken TLS setup (no CA
    // certificates) is its own finding, named before the probes it would make fail.
    if let Err(setup) = api.check_setup().await {
        report(Finding::new(Status::Problem, "https client", setup));
    }
    let probe = api
        .probe(&["api", "tasks", TaskId::generate().as_str()])
        .await;
    let (reach, key_check) = classify_probe(api.base_url(), key_given, &probe);
    report(reach);
    let key_accepted = key_check.status == Status::Ok;
    report(key_check);

    match &policy.default_worker {
        None => report(Finding::new(
            Status::Info,
            "default worker",
            "none set (--worker-id / HANDINGER_MCP_WORKER_ID): Handinger sets up a worker from each task's input",
        )),
        Some(worker) if !key_accepted => report(Finding::new(
            Status::Skipped,
            "default worker",
            format!("{worker} not checked: it needs an accepted key"),
        )),
        Some(worker) => {
            let answer = api.probe(&["api", "workers", worker]).await;
            report(classify_worker(worker, &answer));
        }
    }
    for worker in &tools.workers {
        if key_accepted {
            let answer = api.probe(&["api", "workers", &worker.worker_id]).await;
            report(classify_named_worker(worker, &answer));
        } else {
            report(Finding::new(
                Status::Skipped,
                "named worker",
                format!(
                    "{} ({}) not checked: it needs an accepted key",
                    worker.tool_name(),
                    worker.worker_id
                ),
            ));
        }
    }

    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    emit("");
    let command = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "handinger-mcp".to_owned());
    emit(
        ClientConfig::new(command, api.base_url(), policy)
            .with_tools(tools)
            .render()
            .trim_end(),
    );
    if problems == 0 {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

/// What the probe of a fresh task id says about the base URL and about the key.
pub(crate) fn classify_probe(
    base_url: &str,
    key_given: bool,
    probe: &Result<serde_json::Value, ApiError>,
) -> (Finding, Finding) {
    const REACH: &str = "base url";
    const KEY: &str = "key accepted";
    let reachable = |status: u16| {
        Finding::new(
            Status::Ok,
            REACH,
            format!("{base_url} answered like the Handinger API (HTTP {status})"),
        )
    };
    let unchecked = |why: &str| Finding::new(Status::Skipped, KEY, format!("not checked: {why}"));
    let said = |message: &Option<String>| {
        message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    };
    match probe {
        Ok(_) => (
            reachable(200),
            Finding::new(Status::Ok, KEY, "Handinger accepted the key"),
        ),
        Err(ApiError::Status {
            status: 404,
            message: Some(_),
            ..
        }) => (
            reachable(404),
            Finding::new(
                Status::Ok,
                KEY,
                "Handinger accepted the key (an unknown task id got its 404, as expected)",
            ),
        ),
        Err(ApiError::Status { status: 401, .. }) if !key_given => {
            (reachable(401), unchecked("there is no key to check"))
        }
        Err(ApiError::Status {
            status: 401,
            message,
            ..
        }) => (
            reachable(401),
            Finding::new(
                Status::Problem,
                KEY,
                format!(
                    "Handinger refused the key (HTTP 401{}): check that {API_KEY_VAR} holds a valid, unrevoked key (hdg_live_…); create a new one in the Handinger dashboard if needed",
                    said(message)
                ),
            ),
        ),
        Err(ApiError::Status {
            status: 403,
            message,
            ..
        }) => (
            reachable(403),
            Finding::new(
                Status::Problem,
                KEY,
                format!(
                    "Handinger knows the key but it lacks access (HTTP 403{}): use a key made by a user with API access to the organization",
                    said(message)
                ),
            ),
        ),
        Err(error @ ApiError::Status { status: 429, .. }) => (
            reachable(429),
            Finding::new(
                Status::Problem,
                KEY,
                format!("not checked, rate limited: {}", error.hint()),
            ),
        ),
        Err(ApiError::Status {
            status: status @ 500..=599,
            message,
            ..
        }) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!(
                    "{base_url} answered HTTP {status}{}: Handinger is having trouble; try again in a few minutes",
                    said(message)
                ),
            ),
            unchecked("the API is not answering normally"),
        ),
        Err(ApiError::Status { status: 407, .. }) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!(
                    "the proxy between here and {base_url} wants credentials (HTTP 407): put them in the proxy URL (http://user:password@host:port) or ask for a proxy exemption (NO_PROXY)"
                ),
            ),
            unchecked("the proxy did not let the request through"),
        ),
        Err(ApiError::Status {
            status, message, ..
        }) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!(
                    "{base_url} answered HTTP {status}{} where the Handinger API answers a JSON error: check that HANDINGER_BASE_URL / --base-url points at the Handinger API (https://handinger.com), not a dashboard, proxy or login page",
                    said(message)
                ),
            ),
            unchecked("the base URL does not look like the Handinger API"),
        ),
        // Its own finding already ("https client"): one cause, one problem.
        Err(ApiError::Setup { .. }) => (
            Finding::new(
                Status::Skipped,
                REACH,
                "not checked: the HTTPS client could not be set up (see the https client line)",
            ),
            unchecked("the HTTPS client could not be set up"),
        ),
        Err(
            error @ (ApiError::NotSent { .. }
            | ApiError::LocalFile { .. }
            | ApiError::Withheld { .. }
            | ApiError::Refused { .. }
            | ApiError::FileHost { .. }
            | ApiError::InvalidId { .. }),
        ) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!(
                    "unreachable, {error}: check HANDINGER_BASE_URL / --base-url, the network, and the proxy line above"
                ),
            ),
            unchecked("the API is unreachable"),
        ),
        Err(error @ ApiError::Interrupted { .. }) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!("{error}: check the network and the proxy line above, then try again"),
            ),
            unchecked("the API did not answer"),
        ),
        Err(error @ (ApiError::Malformed { .. } | ApiError::TooLarge { .. })) => (
            Finding::new(
                Status::Problem,
                REACH,
                format!(
                    "{error}: check that HANDINGER_BASE_URL / --base-url points at the Handinger API (https://handinger.com), not a dashboard, proxy or login page"
                ),
            ),
            unchecked("the base URL does not look like the Handinger API"),
        ),
    }
}

/// What `GET /api/workers/{id}` says about the configured default worker.
pub(crate) fn classify_worker(
    worker: &str,
    answer: &Result<serde_json::Value, ApiError>,
) -> Finding {
    const CHECK: &str = "default worker";
    let fix = "check --worker-id / HANDINGER_MCP_WORKER_ID (or leave it unset, and Handinger sets up a worker from each task's input)";
    match answer {
        Ok(_) => Finding::new(Status::Ok, CHECK, format!("{worker} exists")),
        Err(error) => worker_unusable(CHECK, "", worker, fix, error),
    }
}

/// The finding for a worker whose lookup failed: not found, not the key's, or not
/// checkable. `prefix` names the tool, for a named worker.
fn worker_unusable(
    check: &'static str,
    prefix: &str,
    id: &str,
    fix: &str,
    error: &ApiError,
) -> Finding {
    let detail = match error {
        ApiError::Status { status: 404, .. } => {
            format!("{prefix}{id} was not found (HTTP 404): {fix}")
        }
        ApiError::Status { status: 403, .. } => format!(
            "{prefix}the key has no access to {id} (HTTP 403): use a worker of the key's organization, or {fix}"
        ),
        error => format!(
            "{prefix}{id} could not be checked: {error}. {}",
            error.hint()
        ),
    };
    Finding::new(Status::Problem, check, detail)
}

/// What `GET /api/workers/{id}` says about a named worker, whose title and summary become
/// its tool's description.
pub(crate) fn classify_named_worker(
    worker: &NamedWorker,
    answer: &Result<serde_json::Value, ApiError>,
) -> Finding {
    const CHECK: &str = "named worker";
    let tool = worker.tool_name();
    let id = &worker.worker_id;
    let fix = format!(
        "check --worker {}=… / HANDINGER_MCP_WORKERS / the config file's [workers]",
        worker.name
    );
    match answer {
        Ok(found) => {
            let title = found
                .get("title")
                .and_then(serde_json::Value::as_str)
                .filter(|t| !t.trim().is_empty());
            let summary = found
                .get("summary")
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.trim().is_empty());
            match (title, summary) {
                (Some(title), _) => Finding::new(
                    Status::Ok,
                    CHECK,
                    format!("{tool}: {id} exists ({title:?})"),
                ),
                (None, Some(_)) => Finding::new(Status::Ok, CHECK, format!("{tool}: {id} exists")),
                (None, None) => Finding::new(
                    Status::Ok,
                    CHECK,
                    format!(
                        "{tool}: {id} exists but has no title or summary, so the tool is described from its name; give the worker a title and summary in Handinger"
                    ),
                ),
            }
        }
        Err(error) => worker_unusable(CHECK, &format!("{tool}: "), id, &fix, error),
    }
}

/// The proxy variables that are set (credentials masked) and what they mean for `base_url`,
/// following the rules of the HTTP client (reqwest): upper case before lower case,
/// `HTTPS_PROXY` for https and `HTTP_PROXY` for http URLs with `ALL_PROXY` as the fallback,
/// `NO_PROXY` exempting hosts, and all of them ignored under CGI (`REQUEST_METHOD` set).
pub(crate) fn proxy_finding(base_url: &str, env: &dyn Fn(&str) -> Option<String>) -> Finding {
    const CHECK: &str = "proxy";
    const NAMES: [&str; 8] = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    let set: Vec<String> = NAMES
        .iter()
        .filter_map(|name| {
            let value = env(name)?;
            let shown = if name.eq_ignore_ascii_case("NO_PROXY") {
                value
            } else {
                mask_credentials(&value)
            };
            Some(format!("{name}={shown}"))
        })
        .collect();
    let system = "on macOS and Windows the system proxy settings also apply";
    if set.is_empty() {
        return Finding::new(
            Status::Info,
            CHECK,
            format!(
                "none of HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or their lower-case forms) is set: connecting directly ({system})"
            ),
        );
    }
    let first = |names: [&'static str; 2]| names.into_iter().find_map(|n| env(n).map(|v| (n, v)));
    let url = reqwest::Url::parse(base_url).ok();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let scheme = url.as_ref().map(|u| u.scheme()).unwrap_or("https");
    let specific = if scheme == "http" {
        first(["HTTP_PROXY", "http_proxy"])
    } else {
        first(["HTTPS_PROXY", "https_proxy"])
    };
    let chosen = specific
        .filter(|(_, v)| !v.trim().is_empty())
        .or_else(|| first(["ALL_PROXY", "all_proxy"]).filter(|(_, v)| !v.trim().is_empty()));
    let exempt = first(["NO_PROXY", "no_proxy"])
        .map(|(_, list)| no_proxy_covers(&list, &host))
        .unwrap_or(false);
    let effect = if env("REQUEST_METHOD").is_some() {
        "REQUEST_METHOD is set (as under CGI), so the HTTP client ignores these and connects directly".to_owned()
    } else {
        match chosen {
            Some(_) if exempt => format!("{host} is in NO_PROXY, so it is reached directly"),
            Some((name, value)) => format!(
                "{base_url} is reached through {name} ({})",
                mask_credentials(&value)
            ),
            None => format!("none applies to {base_url}: connecting directly"),
        }
    };
    Finding::new(Status::Info, CHECK, format!("{}; {effect}", set.join(", ")))
}

/// Whether a `NO_PROXY` list exempts `host`: `*`, a domain and its subdomains (a leading dot
/// is optional), an IP address, or an IP range (`10.0.0.0/8`), as curl and reqwest read it.
pub(crate) fn no_proxy_covers(list: &str, host: &str) -> bool {
    let ip: Option<IpAddr> = host.parse().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry.is_empty() {
            return false;
        }
        if entry == "*" {
            return true;
        }
        match ip {
            Some(ip) => ip_entry_covers(entry, ip),
            None => {
                let domain = entry.trim_start_matches('.');
                host.eq_ignore_ascii_case(domain)
                    || (host.len() > domain.len()
                        && host.is_char_boundary(host.len() - domain.len() - 1)
                        && host[host.len() - domain.len() - 1..]
                            .eq_ignore_ascii_case(&format!(".{domain}")))
            }
        }
    })
}

fn ip_entry_covers(entry: &str, ip: IpAddr) -> bool {
    let (net, bits) = match entry.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (entry, None),
    };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(net)), IpAddr::V4(ip)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (Ok(IpAddr::V6(net)), IpAddr::V6(ip)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Writes one line to stdout; a closed stdout (`doctor | head`) ends doctor quietly
/// ([`crate::console`]).
fn emit(line: &str) {
    crate::console::line(line);
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn status(status: u16, message: Option<&str>) -> Result<serde_json::Value, ApiError> {
        Err(ApiError::Status {
            status,
            message: message.map(str::to_owned),
            retry_after: None,
            should_retry: None,
            callers_key: false,
        })
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_404_with_handingers_error_body_means_the_key_was_accepted() {
        let (reach, key) = classify_probe("https://h", true, &status(404, Some("Task not found")));
        assert_eq!(reach.status, Status::Ok);
        assert_eq!(key.status, Status::Ok);
    }

    #[test]
    fn refused_and_forbidden_keys_are_problems_that_say_what_to_do() {
        let (reach, key) = classify_probe("https://h", true, &status(401, Some("Invalid API key")));
        assert_eq!(reach.status, Status::Ok);
        assert_eq!(key.status, Status::Problem);
        assert!(key.detail.contains(API_KEY_VAR) && key.detail.contains("Invalid API key"));

        let (_, key) = classify_probe("https://h", true, &status(403, None));
        assert_eq!(key.status, Status::Problem);
        assert!(key.detail.contains("lacks access"), "{}", key.detail);

        let (_, key) = classify_probe("https://h", false, &status(401, None));
        assert_eq!(
            key.status,
            Status::Skipped,
            "a missing key is reported once"
        );
    }

    #[test]
    fn answers_that_are_not_the_api_are_blamed_on_the_base_url() {
        for probe in [
            status(404, None),
            status(405, None),
            Err(ApiError::Malformed {
                status: 200,
                detail: "expected value".into(),
            }),
        ] {
            let (reach, key) = classify_probe("https://h", true, &probe);
            assert_eq!(reach.status, Status::Problem, "{probe:?}");
            assert!(
                reach.detail.contains("HANDINGER_BASE_URL"),
                "{}",
                reach.detail
            );
            assert_eq!(key.status, Status::Skipped);
        }
        let (reach, _) = classify_probe("https://h", true, &status(407, None));
        assert!(reach.detail.contains("proxy"), "{}", reach.detail);
        let (reach, _) = classify_probe(
            "https://h",
            true,
            &Err(ApiError::NotSent {
                base_url: "https://h".into(),
                detail: "connection refused".into(),
            }),
        );
        assert!(reach.detail.contains("unreachable") && reach.detail.contains("proxy"));
    }

    #[test]
    fn a_client_that_could_not_be_set_up_is_one_problem_not_two() {
        let setup = Err(ApiError::Setup {
            detail: "no CA certificates".into(),
        });
        let (reach, key) = classify_probe("https://h", true, &setup);
        assert_eq!(reach.status, Status::Skipped, "{}", reach.detail);
        assert!(reach.detail.contains("https client"), "{}", reach.detail);
        assert_eq!(key.status, Status::Skipped);
    }

    #[test]
    fn worker_findings() {
        assert_eq!(
            classify_worker("wrk_1", &Ok(serde_json::json!({}))).status,
            Status::Ok
        );
        let missing = classify_worker("wrk_1", &status(404, Some("Worker not found")));
        assert_eq!(missing.status, Status::Problem);
        assert!(missing.detail.contains("HANDINGER_MCP_WORKER_ID"));
    }

    #[test]
    fn proxy_credentials_are_masked() {
        let finding = proxy_finding(
            "https://handinger.com",
            &env(&[("https_proxy", "http://alice:s3cret@proxy:3128")]),
        );
        assert!(!says(&finding, "s3cret") && !says(&finding, "alice"));
        assert!(says(&finding, "through https_proxy"));
    }

    #[test]
    fn proxy_choice_follows_the_http_clients_rules() {
        let direct = proxy_finding("https://handinger.com", &env(&[]));
        assert!(says(&direct, "connecting directly"));
        let all = proxy_finding(
            "https://handinger.com",
            &env(&[("HTTP_PROXY", "http://p1"), ("ALL_PROXY", "http://p2")]),
        );
        // An http proxy does not serve https.
        assert!(says(&all, "through ALL_PROXY"));
        let exempt = proxy_finding(
            "https://api.handinger.com",
            &env(&[
                ("HTTPS_PROXY", "http://p"),
                ("NO_PROXY", "localhost,.handinger.com"),
            ]),
        );
        assert!(says(&exempt, "reached directly"));
    }

    /// Whether the finding's detail holds `text`; prints the detail, so a failed assertion
    /// shows what was said instead.
    fn says(finding: &Finding, text: &str) -> bool {
        let holds = finding.detail.contains(text);
        if !holds {
            eprintln!("{text:?} not in: {}", finding.detail);
        }
        holds
    }

    #[test]
    fn no_proxy_matching() {
        assert!(no_proxy_covers("*", "handinger.com"));
        assert!(no_proxy_covers("handinger.com", "api.handinger.com"));
        assert!(no_proxy_covers(".handinger.com", "handinger.com"));
        assert!(!no_proxy_covers("handinger.com", "nothandinger.com"));
        assert!(no_proxy_covers("10.0.0.0/8, localhost", "10.1.2.3"));
        assert!(!no_proxy_covers("10.0.0.0/8", "11.1.2.3"));
        assert!(no_proxy_covers("127.0.0.1", "127.0.0.1"));
        assert!(no_proxy_covers("::1", "::1"));
        assert!(!no_proxy_covers("", "handinger.com"));
    }
}
