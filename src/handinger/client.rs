//! The HTTP client for Handinger's API: auth, body caps, the retry policy, typed answers.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::{Method, header};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use reqwest::multipart::{Form, Part};

use super::attachment::{Upload, UploadSource, exact_stream};
use super::error::ApiError;
use super::lazy_http::LazyHttp;
use super::observer::{Observer, TurnInFlight};
use super::redirect;
use super::types::{
    ErrorBody, Source, TaskAnswer, TaskRecord, TaskRequest, TaskSummary, TurnList, WorkerAnswer,
};
use crate::task_id::TaskId;

/// Resends of a POST that certainly did not reach Handinger (no connection, or 429).
const POST_RESENDS: u32 = 2;
/// Attempts of an idempotent GET.
const GET_ATTEMPTS: u32 = 3;
/// The longest `Retry-After` we sleep through inside one call; longer ones go back to
/// the caller as a rate-limit error that says when to come back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);

/// The name of each attachment's multipart part (see [`multipart_form`]).
pub(crate) const FILES_PART: &str = "files[]";

/// Read size when streaming an attachment from disk.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Settings of the client that come from the command line.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: String,
    pub max_response_bytes: usize,
    /// Per-attempt timeout of GETs and of the worker and schedule calls. Task POSTs have
    /// none: a turn legitimately takes minutes, and how long to wait for one is the task
    /// runner's decision.
    pub get_timeout: Duration,
    /// Hosts answer files may come from beyond the public internet (`--allow-file-host`).
    pub file_hosts: super::fetch_guard::FileHosts,
}

/// A cheap-to-clone handle on the Handinger API for one key.
#[derive(Clone)]
pub struct HandingerClient {
    /// The API client (never following a redirect, see [`super::redirect`]) and the client
    /// for answer files on other hosts (no credentials, public addresses only), built in
    /// the background at start-up (see [`LazyHttp`]) and awaited at first use.
    http: LazyHttp,
    /// `Bearer <key>`, built once and marked sensitive so no `Debug` output shows it. `None`
    /// for a server that runs without a key of its own (`doctor` and `tools` without one,
    /// `--key-from-request`, whose calls run on [`Self::with_key`] clients): its requests
    /// fail before anything is sent, except the unauthenticated probes.
    auth: Option<header::HeaderValue>,
    /// Identifies the key without revealing it (a keyed hash, random per process), so
    /// state kept per key (answers waiting for collection) never crosses keys.
    scope: u64,
    /// The key is a caller's own (`--key-from-request`, [`Self::with_key`]): a refusal of
    /// it is advice for the caller, not the operator ([`ApiError::Status`]).
    callers_key: bool,
    tasks_url: String,
    options: std::sync::Arc<ClientOptions>,
    /// Told about every request (the server's metrics).
    observer: std::sync::Arc<dyn Observer>,
    /// Structured outputs with more values are passed as text (`--max-structured-values`,
    /// [`super::structured`]).
    max_structured_values: usize,
}

impl HandingerClient {
    /// Starts building the HTTP client in the background; a broken TLS setup shows at the
    /// first call (and in `doctor`), not here.
    pub fn new(
        key: Option<&SecretString>,
        options: ClientOptions,
        observer: std::sync::Arc<dyn Observer>,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            http: LazyHttp::spawn(options.file_hosts.clone()),
            auth: key.map(bearer).transpose()?,
            scope: key.map_or(0, key_scope),
            callers_key: false,
            tasks_url: format!("{}/api/tasks", options.base_url),
            options: std::sync::Arc::new(options),
            observer,
            max_structured_values: super::structured::DEFAULT_MAX_VALUES,
        })
    }

    /// The same client, passing structured outputs of more than `max_values` values as
    /// text ([`super::structured`]).
    pub fn with_max_structured_values(mut self, max_values: usize) -> Self {
        self.max_structured_values = max_values;
        self
    }

    /// The same client with another key: the connection pool, settings and observer are
    /// shared (per-user keys cost no extra TLS handshakes), the credentials are not.
    pub fn with_key(&self, key: &SecretString) -> Result<Self, KeyError> {
        Ok(Self {
            auth: Some(bearer(key)?),
            scope: key_scope(key),
            callers_key: true,
            ..self.clone()
        })
    }

    /// Same value for the same key within this process; see the field's comment.
    pub fn scope(&self) -> u64 {
        self.scope
    }

    /// The [`Self::scope`] a client with `key` would have, without building one.
    pub fn scope_of(key: &SecretString) -> u64 {
        key_scope(key)
    }

    /// SHA-256 of `domain` and the key: unlike [`Self::scope`] the same in every process, so
    /// replicas sharing a turn store (`--store`) file a key's answers under the same name.
    /// Different domains give unrelated digests, and none reveals the key. Computed on
    /// demand: only the shared store asks.
    pub fn key_digest(&self, domain: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(domain.as_bytes());
        hasher.update([0]);
        // `Bearer <key>`: the key, trimmed, with a fixed prefix.
        hasher.update(self.auth.as_ref().map_or(&b""[..], |auth| auth.as_bytes()));
        hasher.finalize().into()
    }

    pub fn base_url(&self) -> &str {
        &self.options.base_url
    }

    /// Waits for the HTTPS clients to be built; the error says what to fix (no CA
    /// certificates).
    pub async fn check_setup(&self) -> Result<(), String> {
        self.http.get().await.map(drop)
    }

    /// Whether Handinger's API answers at all: one request without credentials (any HTTP
    /// answer, 401 included, shows it is reachable, and no key needs to travel for it).
    /// The error names the URL and the innermost cause ("Connection refused").
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), String> {
        let http = self.http.get().await?;
        match http.api.get(&self.tasks_url).timeout(timeout).send().await {
            Ok(_) => Ok(()),
            Err(error) => Err(format!(
                "cannot reach the Handinger API at {}: {}",
                self.tasks_url,
                super::error::innermost_cause(&error)
            )),
        }
    }

    /// The built HTTP client, waiting for the background build on first use. Its failure
    /// (a broken TLS setup) is an error on this side: nothing was sent.
    async fn connection(&self) -> Result<reqwest::Client, ApiError> {
        Ok(self.clients().await?.api)
    }

    async fn clients(&self) -> Result<super::redirect::HttpClients, ApiError> {
        self.http
            .get()
            .await
            .map_err(|detail| ApiError::Setup { detail })
    }

    /// `POST /api/tasks`: runs one turn and waits for its answer.
    ///
    /// Resent only when Handinger certainly did not take it and asked for, or will accept, a
    /// second try (see [`ApiError::post_may_be_resent`]): a blind resend with the same task id
    /// would add a second turn. And only while `still_ours()` holds: with a shared store, the
    /// pause before a resend can outlast the turn's claim, and the replica that took it over
    /// may have posted it meanwhile.
    pub async fn create_task(
        &self,
        request: &TaskRequest,
        still_ours: &(dyn Fn() -> bool + Sync),
    ) -> Result<WorkerAnswer, ApiError> {
        let _turn = TurnInFlight::new(&*self.observer);
        let http = self.connection().await?;
        let mut resends = 0;
        loop {
            let builder = http.post(&self.tasks_url);
            let builder = if request.files.is_empty() {
                builder.json(request)
            } else {
                builder.multipart(multipart_form(request)?)
            };
            let attempt = self.send(builder, None).await;
            match attempt {
                Err(error) if resends < POST_RESENDS && error.post_may_be_resent() => {
                    let Some(pause) = resend_pause(&error, resends) else {
                        return Err(error);
                    };
                    resends += 1;
                    tracing::info!(task_id = %request.task_id, %error, ?pause, "request not taken by Handinger; resending");
                    tokio::time::sleep(pause).await;
                    if !still_ours() {
                        tracing::warn!(task_id = %request.task_id, "not resending: the turn's claim in the shared store was lost during the pause");
                        return Err(error);
                    }
                }
                other => {
                    return other.map(|mut answer: WorkerAnswer| {
                        super::structured::bound(
                            &mut answer.structured_output,
                            self.max_structured_values,
                        );
                        answer
                    });
                }
            }
        }
    }

    /// The task and its turns: the one place that knows where Handinger keeps them.
    ///
    /// Since 2026-07 `GET /api/tasks/{taskId}` answers `{task}` and the turns come from
    /// `GET /api/tasks/{taskId}/turns`; older deployments embed `turns` in the task answer
    /// and have no turns endpoint. Both are asked at once (the second costs no extra wait);
    /// the turns endpoint wins, the embedded list is the fallback, and when neither gives a
    /// list the record says so ([`TaskRecord::turns_unavailable`]) rather than passing an
    /// empty list off as "no turns". Each GET is retried with backoff.
    ///
    /// Two reads can straddle a turn that starts or ends between them (the task "completed",
    /// its newest turn just posted and empty): a record whose task and newest turn disagree
    /// on whether the task has ended is read again, and if they still disagree the newest
    /// turn's status, which comes with the answer it describes, is the task's.
    pub async fn get_task(&self, task_id: &TaskId) -> Result<TaskRecord, ApiError> {
        const READS: usize = 3;
        let task_url = format!("{}/{}", self.tasks_url, task_id.path_segment());
        let turns_url = format!("{task_url}/turns");
        let mut read = 1;
        loop {
            let mut record = self.read_task(&task_url, &turns_url).await?;
            if record.agrees() {
                return Ok(record);
            }
            if read == READS {
                tracing::debug!(%task_id, "the task and its turns kept disagreeing; the newest turn's status stands");
                record.task.status = record.latest_turn().and_then(|t| t.status.clone());
                return Ok(record);
            }
            read += 1;
        }
    }

    /// One read of the task and its turns, both asked at once.
    async fn read_task(&self, task_url: &str, turns_url: &str) -> Result<TaskRecord, ApiError> {
        let (task, turns) = tokio::join!(
            self.get_json::<TaskAnswer>(task_url),
            self.get_json::<TurnList>(turns_url)
        );
        let task = task?;
        let (turns, turns_unavailable) = match (turns, task.turns) {
            (
                Ok(TurnList {
                    items: Some(items), ..
                }),
                _,
            ) => (items, None),
            (_, Some(embedded)) => (embedded, None),
            (Ok(_), None) => (
                Vec::new(),
                Some("Handinger answered the turn list in an unknown shape (no items)".into()),
            ),
            (Err(error), None) => (
                Vec::new(),
                Some(format!("the turn list could not be read ({error})")),
            ),
        };
        let mut record = TaskRecord {
            task: task.task,
            turns,
            turns_unavailable,
        };
        record.turns.sort_by_key(|t| t.seq.unwrap_or(i64::MAX));
        for turn in &mut record.turns {
            super::structured::bound(&mut turn.structured_output, self.max_structured_values);
        }
        Ok(record)
    }

    /// The sources of the task's latest turn, when that turn has finished: turn records
    /// carry none, so they come from the worker's state for the task
    /// (`GET /api/workers/{id}?taskId=`), used only when its answer text is the latest
    /// turn's (so they belong to that turn). Empty when they cannot be had: sources add to
    /// an answer, their absence never fails one.
    pub async fn latest_sources(&self, task_id: &TaskId, record: &TaskRecord) -> Vec<Source> {
        let Some(worker_id) = record.task.worker_id.as_deref() else {
            return Vec::new();
        };
        let Some(output) = record
            .latest_turn()
            .filter(|t| t.status.as_deref() == Some("completed"))
            .and_then(|t| t.output_text.as_deref())
            .filter(|text| !text.is_empty())
        else {
            return Vec::new();
        };
        match self.get_worker_for_task(worker_id, task_id).await {
            Ok(state) if state.output_text.as_deref() == Some(output) => state.sources,
            Ok(_) => Vec::new(),
            Err(error) => {
                tracing::debug!(%task_id, %error, "no sources for the latest turn");
                Vec::new()
            }
        }
    }

    /// `GET /api/tasks/{taskId}` alone: the task's status, title and totals, without its
    /// turns. For polling a running task, where the turns are not needed until it ends.
    pub async fn get_task_summary(&self, task_id: &TaskId) -> Result<TaskSummary, ApiError> {
        let url = format!("{}/{}", self.tasks_url, task_id.path_segment());
        Ok(self.get_json::<TaskAnswer>(&url).await?.task)
    }

    /// An authenticated GET of any API path, retried with backoff on transient failures.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ApiError> {
        let http = self.connection().await?;
        let mut attempt = 0;
        loop {
            let result = self
                .send(http.get(url), Some(self.options.get_timeout))
                .await;
            match result {
                Err(error) if attempt + 1 < GET_ATTEMPTS && error.is_transient() => {
                    let Some(pause) = resend_pause(&error, attempt) else {
                        return Err(error);
                    };
                    attempt += 1;
                    tracing::debug!(%error, ?pause, "GET failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// Downloads a file an answer points at, up to `limit` bytes; returns the bytes and the
    /// declared content type.
    ///
    /// Redirects are followed here, hop by hop (at most [`redirect::MAX_HOPS`]): the API key
    /// goes along only while every URL so far is on the API's own origin; any other URL must
    /// pass the file-host check first ([`super::fetch_guard`]) and is fetched with the
    /// client that sends no credentials and connects to public addresses only.
    pub async fn download(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<(Bytes, Option<String>), ApiError> {
        let refused = |detail: String| ApiError::Refused { detail };
        let mut url = reqwest::Url::parse(url)
            .map_err(|e| refused(format!("the file URL {url:?} is not a URL ({e})")))?;
        let clients = self.clients().await?;
        let mut on_api_origin = true;
        for _hop in 0..=redirect::MAX_HOPS {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(refused(format!(
                    "not fetched: {} is not an http(s) URL",
                    url.origin().ascii_serialization()
                )));
            }
            on_api_origin = on_api_origin && self.is_api_origin(&url);
            let builder = if on_api_origin {
                self.with_auth(clients.api.get(url.clone()))
            } else {
                self.options.file_hosts.check(&url).map_err(refused)?;
                clients.files.get(url.clone())
            };
            let response = builder
                .timeout(self.options.get_timeout)
                .send()
                .await
                .map_err(|e| {
                    if on_api_origin {
                        self.transport_error(&e)
                    } else {
                        file_host_error(&url, &e)
                    }
                })?;
            if let Some(next) = redirect::target(&response) {
                url = next.map_err(refused)?;
                continue;
            }
            let status = response.status();
            let media_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let body = read_capped(response, limit).await?;
            if !status.is_success() && !on_api_origin {
                // Another host's answer: not Handinger's, and no key of ours was refused.
                let said = error_message(&body).map(|m| format!(": {m}"));
                return Err(ApiError::FileHost {
                    origin: url.origin().ascii_serialization(),
                    detail: format!(
                        "it answered HTTP {}{}",
                        status.as_u16(),
                        said.unwrap_or_default()
                    ),
                });
            }
            if !status.is_success() {
                return Err(ApiError::Status {
                    status: status.as_u16(),
                    message: error_message(&body),
                    retry_after: None,
                    should_retry: None,
                    callers_key: self.callers_key,
                });
            }
            return Ok((body, media_type));
        }
        Err(refused(format!(
            "not fetched: more than {} redirects",
            redirect::MAX_HOPS
        )))
    }

    /// One GET of a document on another host through the answer-file guard
    /// ([`super::fetch_guard`]: https to public addresses, checked again at connect, or a
    /// host the operator allowed), with no credentials, no redirect followed, at most
    /// `limit` bytes and `timeout`: for OAuth client ID metadata documents.
    pub async fn fetch_foreign(
        &self,
        url: &reqwest::Url,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let refused = |detail: String| ApiError::Refused { detail };
        self.options.file_hosts.check(url).map_err(refused)?;
        let clients = self.clients().await?;
        let response = clients
            .files
            .get(url.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| file_host_error(url, &e))?;
        if redirect::target(&response).is_some() {
            return Err(refused(format!(
                "not fetched: {} answered with a redirect, which is not followed here",
                url.origin().ascii_serialization()
            )));
        }
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::FileHost {
                origin: url.origin().ascii_serialization(),
                detail: format!("it answered HTTP {}", status.as_u16()),
            });
        }
        read_capped(response, limit).await
    }

    fn is_api_origin(&self, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.options.base_url).is_ok_and(|base| base.origin() == url.origin())
    }

    /// `{base_url}{path}`, for a path whose ids are already escaped
    /// ([`crate::task_id::checked_segment`], [`TaskId::path_segment`]).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_url)
    }

    /// A request that changes something (POST, PATCH, DELETE), with an optional JSON body.
    ///
    /// Like `POST /api/tasks` it is resent only when Handinger certainly did not take it
    /// ([`ApiError::post_may_be_resent`]): resending a POST that went through could create a
    /// second worker or schedule. Each attempt is bounded by the request timeout.
    pub async fn send_json<B, T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError>
    where
        B: serde::Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self.url(path);
        let http = self.connection().await?;
        let mut resends = 0;
        loop {
            let mut builder = http.request(method.clone(), &url);
            if let Some(body) = body {
                builder = builder.json(body);
            }
            match self.send(builder, Some(self.options.get_timeout)).await {
                Err(error) if resends < POST_RESENDS && error.post_may_be_resent() => {
                    let Some(pause) = resend_pause(&error, resends) else {
                        return Err(error);
                    };
                    resends += 1;
                    tracing::info!(%method, path, %error, ?pause, "request not taken by Handinger; resending");
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// One authenticated GET of `{base_url}/{segments…}` (each segment path-escaped), with
    /// no retry and no warning log: `doctor` reports how Handinger answers, and an expected
    /// 404 is not worth a warning.
    pub async fn probe(&self, segments: &[&str]) -> Result<serde_json::Value, ApiError> {
        let not_sent = |detail: String| ApiError::NotSent {
            base_url: self.options.base_url.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(&self.options.base_url)
            .map_err(|e| not_sent(format!("the base URL is not a URL ({e})")))?;
        url.path_segments_mut()
            .map_err(|()| not_sent("the base URL cannot carry a path".into()))?
            .pop_if_empty()
            .extend(segments);
        let http = self.connection().await?;
        let request = self
            .with_auth(http.get(url))
            .timeout(self.options.get_timeout)
            .build()
            .map_err(|e| self.transport_error(&e))?;
        match http.execute(request).await {
            Ok(response) => self.read_answer(response).await,
            Err(error) => Err(self.transport_error(&error)),
        }
    }

    /// `builder` with the key, when this client has one.
    fn with_auth(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(auth) => builder.header(header::AUTHORIZATION, auth.clone()),
            None => builder,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        let Some(auth) = &self.auth else {
            return Err(ApiError::Setup {
                detail: "no Handinger API key for this request: set HANDINGER_API_KEY to your key (hdg_live_…)".into(),
            });
        };
        let mut builder = builder.header(header::AUTHORIZATION, auth.clone());
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let request = builder.build().map_err(|e| self.transport_error(&e))?;
        let (method, path) = (request.method().clone(), request.url().path().to_owned());
        let started = Instant::now();
        let http = self.connection().await?;
        let response = http
            .execute(request)
            .await
            .map_err(|e| self.transport_error(&e));
        let outcome = match response {
            Ok(response) => self.read_answer(response).await,
            Err(error) => Err(error),
        };
        log_exchange(&method, &path, started.elapsed(), &outcome);
        self.observer
            .request_finished(&method, started.elapsed(), outcome.is_ok());
        outcome
    }

    async fn read_answer<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ApiError> {
        let status = response.status();
        if let Some(message) = redirect::refusal(&response) {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: Some(message),
                retry_after: None,
                should_retry: None,
                callers_key: self.callers_key,
            });
        }
        let retry_after = retry_after(response.headers(), std::time::SystemTime::now());
        let should_retry = should_retry(response.headers());
        let body = read_capped(response, self.options.max_response_bytes).await?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: error_message(&body),
                retry_after,
                should_retry,
                callers_key: self.callers_key,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
            status: status.as_u16(),
            // serde quotes some of what it read (an unknown variant) as it is.
            detail: crate::printable::one_line(&e.to_string()).into_owned(),
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        let detail = super::error::cause_chain(error);
        if error.is_connect() || error.is_builder() {
            ApiError::NotSent {
                base_url: self.options.base_url.clone(),
                detail,
            }
        } else if error.is_timeout() {
            ApiError::Interrupted {
                detail: format!("no answer within the timeout ({detail})"),
            }
        } else {
            ApiError::Interrupted { detail }
        }
    }
}

/// The multipart body of a task with attachments: the fields as text parts, each file as a
/// part named `files[]`, streamed from disk rather than read into memory.
///
/// `files[]` is what the official SDKs send (Stainless' "brackets" array format); the API
/// page only says "multipart/form-data", so the SDKs are the record of what Handinger reads.
fn multipart_form(request: &TaskRequest) -> Result<Form, ApiError> {
    let mut form = Form::new()
        .text("input", request.input.clone())
        .text("budget", request.budget.as_str())
        .text("taskId", request.task_id.clone());
    if let Some(worker) = &request.worker_id {
        form = form.text("workerId", worker.clone());
    }
    for upload in &request.files {
        let part = match &upload.source {
            UploadSource::Memory(bytes) => Part::stream_with_length(bytes.clone(), upload.len()),
            UploadSource::Disk { file, len } => {
                let file = Upload::reopen(file).map_err(|e| ApiError::LocalFile {
                    detail: format!("cannot read {} again: {e}", upload.name),
                })?;
                let stream = exact_stream(file, *len, UPLOAD_CHUNK);
                Part::stream_with_length(reqwest::Body::wrap_stream(stream), *len)
            }
        };
        let part = part
            .file_name(upload.name.clone())
            .mime_str(&upload.media_type)
            .map_err(|e| ApiError::LocalFile {
                detail: format!("media type of {}: {e}", upload.name),
            })?;
        form = form.part(FILES_PART, part);
    }
    Ok(form)
}

/// A key that cannot be sent. The messages never show the key.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum KeyError {
    #[error("HANDINGER_API_KEY is empty: set it to your Handinger API key (hdg_live_…)")]
    Empty,
    #[error(
        "HANDINGER_API_KEY contains characters that cannot go in an HTTP header (a stray newline or quote?): paste the key again"
    )]
    Unprintable,
}

fn bearer(key: &SecretString) -> Result<header::HeaderValue, KeyError> {
    let key = key.expose_secret().trim();
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    let mut value = header::HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| KeyError::Unprintable)?;
    value.set_sensitive(true);
    Ok(value)
}

fn key_scope(key: &SecretString) -> u64 {
    use std::hash::BuildHasher;
    static HASHER: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    HASHER
        .get_or_init(Default::default)
        .hash_one(key.expose_secret().trim())
}

/// Reads the body, refusing to buffer more than `limit` bytes.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Bytes, ApiError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| ApiError::Interrupted {
        detail: format!("the answer was cut off ({})", super::error::cause_chain(&e)),
    })? {
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Why a file on a host other than the API's was not fetched: the file guard's refusal
/// (made inside the resolver, so it arrives as a connection error) as the refusal it is,
/// anything else as that host's failure. Neither is Handinger's: the API was not asked.
fn file_host_error(url: &reqwest::Url, error: &reqwest::Error) -> ApiError {
    if let Some(refusal) = super::error::find_cause::<super::fetch_guard::NotPublic>(error) {
        return ApiError::Refused {
            detail: refusal.to_string(),
        };
    }
    let detail = super::error::cause_chain(error);
    let origin = url.origin().ascii_serialization();
    if error.is_timeout() {
        ApiError::FileHost {
            origin,
            detail: format!("no answer within the timeout ({detail})"),
        }
    } else {
        ApiError::FileHost { origin, detail }
    }
}

/// Handinger's `{"error": "..."}` message, if the body is one (bounded: it ends up in
/// results). Escaped ([`crate::printable`]): it is upstream text, and it is logged.
fn error_message(body: &[u8]) -> Option<String> {
    const MAX_CHARS: usize = 500;
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let message = match parsed.error? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let bounded: String = message.chars().take(MAX_CHARS).collect();
    Some(crate::printable::one_line(&bounded).into_owned())
}

/// The wait Handinger asked for, read as the official SDKs read it: `retry-after-ms`
/// (milliseconds) first, then `Retry-After` as seconds (fractions allowed) or as an HTTP
/// date (a date in the past means "now").
fn retry_after(headers: &header::HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let seconds = |value: &str| {
        value
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    };
    if let Some(wait) = text("retry-after-ms")
        .and_then(seconds)
        .map(|ms| ms.div_f64(1000.0))
    {
        return Some(wait);
    }
    let value = text(header::RETRY_AFTER.as_str())?;
    seconds(value).or_else(|| {
        let at = httpdate::parse_http_date(value).ok()?;
        Some(at.duration_since(now).unwrap_or_default())
    })
}

/// `x-should-retry: true|false`, Handinger's own verdict on retrying.
fn should_retry(headers: &header::HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// How long to pause before resend number `attempt` (0-based), or `None` when Handinger
/// asked for a longer pause than one call should sit through.
fn resend_pause(error: &ApiError, attempt: u32) -> Option<Duration> {
    let backoff = Duration::from_millis(250 * 4u64.pow(attempt));
    match error {
        ApiError::Status {
            retry_after: Some(wait),
            ..
        } => (*wait <= MAX_RETRY_AFTER).then_some(*wait),
        ApiError::Status { status: 429, .. } => Some(backoff.max(Duration::from_secs(1))),
        _ => Some(backoff),
    }
}

fn log_exchange<T>(method: &Method, path: &str, elapsed: Duration, outcome: &Result<T, ApiError>) {
    match outcome {
        Ok(_) => tracing::debug!(%method, path, ?elapsed, "handinger call succeeded"),
        Err(error) => tracing::warn!(%method, path, ?elapsed, %error, "handinger call failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_sensitive_and_hidden_from_debug() {
        let value = bearer(&SecretString::from("hdg_live_secret")).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("hdg_live_secret"));
    }

    #[test]
    fn bearer_refuses_empty_and_unprintable_keys_without_echoing_them() {
        assert!(
            bearer(&SecretString::from("  "))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let err = bearer(&SecretString::from("hdg\nlive"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hdg"));
    }

    #[test]
    fn long_retry_after_is_left_to_the_caller() {
        let error = ApiError::Status {
            status: 429,
            message: None,
            retry_after: Some(Duration::from_secs(120)),
            should_retry: None,
            callers_key: false,
        };
        assert_eq!(resend_pause(&error, 0), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> header::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    header::HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn retry_after_reads_every_form_the_sdks_read() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let wait = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(
            wait(&[("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        // Milliseconds win over seconds, as in the SDKs.
        assert_eq!(
            wait(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            wait(&[("retry-after", "2.5")]),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(wait(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            wait(&[("retry-after", &in_ten)]),
            Some(Duration::from_secs(10))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(wait(&[("retry-after", &past)]), Some(Duration::ZERO));
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[("retry-after", "-1")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn should_retry_is_obeyed_for_reads_and_for_a_rate_limited_post_only() {
        let status = |status, verdict: &str| ApiError::Status {
            status,
            message: None,
            retry_after: None,
            should_retry: should_retry(&headers(&[("x-should-retry", verdict)])),
            callers_key: false,
        };
        // Reads follow the header either way.
        assert!(!status(503, "false").is_transient());
        assert!(status(400, "true").is_transient());
        assert!(status(503, "maybe").is_transient());
        // A POST: a 429 that says "don't" is not resent; a 5xx that says "do" is still not,
        // because Handinger may have started the turn.
        assert!(!status(429, "false").post_may_be_resent());
        assert!(status(429, "true").post_may_be_resent());
        assert!(!status(502, "true").post_may_be_resent());
    }
}
