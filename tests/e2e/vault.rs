//! The token vault end to end (docs/vault.md, issue 23): the real binary
//! with `--vault`, against a real authorization server (`tests/oidc/`, npm
//! `oidc-provider` with PKCE, refresh-token rotation and reuse detection):
//! a user's grant made through the authorization-code flow, handed out only
//! to a resolution Cedar allows and a key allowed to see it, refreshed once
//! for many concurrent callers, revoked at the provider, and never stored
//! or logged in clear.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "../oidc/idp.rs"]
mod idp;

use crate::server::{Server, authorized_client, warrant_command};

/// How long the provider's access tokens live here, and how long before
/// expiry the vault refreshes them: short, so a refresh comes due in the test.
const ACCESS_TTL_S: u64 = 4;
const SKEW: &str = "1s";

/// The `serve` flags of a vault serving `c_wh` from `idp`, its files
/// written into `dir` (one key-encryption key, so instances sharing a
/// database open each other's grants).
fn vault_args(idp: &idp::Idp, dir: &Path) -> Vec<std::ffi::OsString> {
    let secret = dir.join("client.secret");
    std::fs::write(&secret, idp::CLIENT_SECRET).unwrap();
    let file = json!({
        "providers": {"idp": {"issuer": idp.issuer, "client_id": idp::CLIENT_ID,
                              "client_secret_file": secret, "scopes": ["openid", "offline_access"],
                              "refresh_skew": SKEW}},
        "connections": {"c_wh": {"provider": "idp", "role": "ANALYST"}},
    });
    let vault = dir.join("vault.json");
    std::fs::write(&vault, file.to_string()).unwrap();
    let kek = dir.join("vault.key");
    std::fs::write(&kek, format!("k1 {}\n", "5a".repeat(32))).unwrap();
    vec!["--vault".into(), vault.into(), "--vault-key-file".into(), kek.into()]
}

/// A server whose vault serves `c_wh` from `idp`, with the credential tests'
/// entities (eddie edits `p_disabled`, which shares no owner credentials).
async fn vault_server(idp: &idp::Idp, dir: &Path, more: &[&std::ffi::OsStr]) -> Server {
    let mut args = vault_args(idp, dir);
    args.extend(more.iter().map(|a| a.to_os_string()));
    let server = Server::start_with_args(&args);
    server.put_entities(&crate::credentials::entities()).await;
    server
}

fn resolve(principal: &str, reveal: bool) -> Value {
    json!({"principal": {"type": "User", "id": principal}, "project": "p_disabled", "connection": "c_wh",
           "surface": "notebook", "reveal": reveal})
}

/// Connects `owner` through the provider: start, the browser's walk, the
/// callback. The callback's answer.
async fn connect(server: &Server, idp: &idp::Idp, owner: &str) -> Value {
    let started = server.post("/v1/grants/c_wh/start", &json!({"owner": owner})).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let url = started.json["authorization_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&idp.issuer) && url.contains("code_challenge_method=S256"), "{url}");
    let callback = idp.browse(&url).await;
    assert!(callback.as_str().starts_with(&server.base), "the provider sends the user back to warrant: {callback}");
    // The callback needs no API key.
    let plain = reqwest::Client::new();
    let answer = plain.get(callback.clone()).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let connected: Value = answer.json().await.unwrap();
    // A `state` works once.
    let again = plain.get(callback).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["error"]["code"], "unknown_state", "{again}");
    connected
}

#[tokio::test]
async fn a_grant_is_made_revealed_to_allowed_callers_refreshed_once_and_revoked_at_the_provider() {
    let ttl = ACCESS_TTL_S.to_string();
    let idp = idp::start(&[("OIDC_ACCESS_TTL", ttl.as_str())]);
    let dir = tempfile::tempdir().unwrap();
    // A subscriber of every record, whose bodies are searched for tokens too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = std::sync::Arc::new(std::sync::Mutex::new(crate::webhooks::Inbox::default()));
    let listening = tokio::spawn(crate::webhooks::subscriber(listener, std::sync::Arc::clone(&inbox), 0));
    let hooks = dir.path().join("webhooks.json");
    let (_, whsec) = crate::webhooks::secret(9);
    let subscription = json!({"name": "siem", "url": format!("http://127.0.0.1:{port}/hook"), "secret": whsec,
                              "kinds": ["*"], "retry_initial_ms": 50, "retry_max_ms": 400});
    std::fs::write(&hooks, json!({"subscriptions": [subscription]}).to_string()).unwrap();
    let server = vault_server(&idp, dir.path(), &["--webhooks".as_ref(), hooks.as_os_str()]).await;

    let connected = connect(&server, &idp, "eddie").await;
    assert_eq!(connected["status"], "active", "{connected}");
    assert_eq!(connected["owner"], "eddie");
    assert!(connected.get("access_token").is_none(), "no token in the callback's answer: {connected}");
    let grant = connected["grant_id"].as_str().unwrap().to_owned();
    let issued = Instant::now();

    // Cedar allows eddie his own token: with `reveal`, he gets it.
    let r = server.post("/v1/credentials/resolve", &resolve("eddie", true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["decision"], "allow", "{}", r.text);
    assert_eq!(r.json["credential"]["token_id"], grant.as_str());
    let first = r.json["credential"]["access_token"].as_str().unwrap().to_owned();
    assert!(idp.introspect(&first).await, "the revealed token is the provider's, active");
    let mut seen = vec![first.clone()];

    // Without `reveal`, no token; with it but without the scope, a 403.
    let r = server.post("/v1/credentials/resolve", &resolve("eddie", false)).await;
    assert!(r.json["credential"].get("access_token").is_none(), "{}", r.text);
    let out = warrant_command(server.config_home())
        .args(["keys", "create", "--database-url", server.database_url(), "--scope", "decide"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decide_only = authorized_client(String::from_utf8_lossy(&out.stdout).trim(), reqwest::Client::builder());
    let r = decide_only.post(server.url("/v1/credentials/resolve")).json(&resolve("eddie", true)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "reveal", "{body}");

    // Someone Cedar does not allow gets no token: otto is in no grantee group.
    let r = server.post("/v1/credentials/resolve", &resolve("otto", true)).await;
    assert_eq!(r.json["decision"], "deny", "{}", r.text);
    assert!(r.json.get("credential").is_none(), "{}", r.text);

    // Once the token is within the skew of its expiry, 16 callers at once:
    // the provider sees one refresh, and everyone gets its token.
    let due = Duration::from_secs(ACCESS_TTL_S) - Duration::from_millis(500);
    tokio::time::sleep(due.saturating_sub(issued.elapsed())).await;
    let before = idp.stats().await["refresh_grants"].as_u64().unwrap_or(0);
    let mut tokens = std::collections::BTreeSet::new();
    for answer in at_once(&server, "eddie", 16).await {
        assert_eq!(answer["decision"], "allow", "{answer}");
        tokens.insert(answer["credential"]["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(idp.stats().await["refresh_grants"].as_u64().unwrap_or(0), before + 1, "exactly one refresh");
    assert_eq!(tokens.len(), 1, "every caller got the winner's token: {tokens:?}");
    let refreshed = tokens.into_iter().next().unwrap();
    assert_ne!(refreshed, first);
    assert!(idp.introspect(&refreshed).await);
    seen.push(refreshed.clone());
    let records = server.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await;
    assert_eq!(records.len(), 1, "one token.refreshed: {records:?}");
    assert_eq!(records[0]["details"]["rotation"], "rotated", "{}", records[0]);

    // Disconnect: revoked at the provider and here.
    let r = server.delete(&format!("/v1/grants/{grant}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "revoked", "{}", r.text);
    assert!(!idp.introspect(&refreshed).await, "the provider ended the grant");
    let r = server.post("/v1/credentials/resolve", &resolve("eddie", true)).await;
    assert_eq!(r.json["decision"], "deny", "{}", r.text);
    let revoked = server.audit_events(&format!("kind=token.revoked&token_id={grant}")).await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["details"]["at_provider"], "revoked", "{}", revoked[0]);

    // Nothing the provider issued (access and refresh tokens alike) is
    // stored or logged in clear.
    let issued = idp.issued().await;
    assert!(issued.len() >= 4, "a code exchange and a refresh, each an access and a refresh token: {}", issued.len());
    assert!(seen.iter().all(|t| issued.contains(t)), "the fixture lists what it issued");
    let mut stored = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", server.database_path().display());
        stored.extend(std::fs::read(&path).unwrap_or_default());
    }
    let export = server.get("/v1/audit/export").await.text;
    let records = export.lines().count();
    let deadline = Instant::now() + Duration::from_secs(30);
    let bodies: Vec<String> = loop {
        let bodies: Vec<String> = inbox
            .lock()
            .unwrap()
            .accepted
            .iter()
            .map(|(.., body)| String::from_utf8_lossy(body).into_owned())
            .collect();
        if bodies.len() >= records {
            break bodies;
        }
        assert!(Instant::now() < deadline, "{} of {records} records delivered", bodies.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(bodies.iter().any(|b| b.contains("token.refreshed")), "the vault's records are delivered");
    listening.abort();
    let logs = server.logs();
    for token in &issued {
        let needle = token.as_bytes();
        assert!(!stored.windows(needle.len()).any(|w| w == needle), "a token is in the database in clear");
        assert!(!export.contains(token.as_str()), "a token is in the audit export");
        assert!(!logs.contains(token.as_str()), "a token is in the logs");
        assert!(!bodies.iter().any(|b| b.contains(token.as_str())), "a token is in a webhook body");
    }
}

#[tokio::test]
async fn deprovisioning_a_user_revokes_their_grants_at_the_provider() {
    let idp = idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = crate::webhooks::secret(7);
    let hooks = dir.path().join("webhooks.json");
    std::fs::write(&hooks, json!({"sources": {"okta": {"scheme": "standard", "secrets": [secret]}}}).to_string())
        .unwrap();
    let server = vault_server(&idp, dir.path(), &["--webhooks".as_ref(), hooks.as_os_str()]).await;
    let eddie = connect(&server, &idp, "eddie").await["grant_id"].as_str().unwrap().to_owned();
    let erin = connect(&server, &idp, "erin").await["grant_id"].as_str().unwrap().to_owned();
    let token_of = |r: &crate::server::Reply| r.json["credential"]["access_token"].as_str().unwrap().to_owned();
    let (eddie_token, erin_token) =
        (token_of(&reveal(&server, "eddie").await), token_of(&reveal(&server, "erin").await));
    assert!(idp.introspect(&eddie_token).await && idp.introspect(&erin_token).await);

    let body = json!({"type": "user.deprovisioned", "data": {"owner": "eddie"}});
    let r = crate::webhooks::Delivery::signed(&key, "msg_vault_deprov", &body).send(&server).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!idp.introspect(&eddie_token).await, "revoked at the provider");
    assert!(idp.introspect(&erin_token).await, "another user's grant is untouched");
    let grant = server.get(&format!("/v1/grants/{eddie}")).await;
    assert_eq!(grant.json["status"], "revoked", "{}", grant.text);
    let r = reveal(&server, "eddie").await;
    assert_eq!(r.json["decision"], "deny", "{}", r.text);
    assert_eq!(r.json["reasons"], json!(["reauth_required"]), "{}", r.text);
    let other = server.get(&format!("/v1/grants/{erin}")).await;
    assert_eq!(other.json["status"], "active", "{}", other.text);
}

#[tokio::test]
async fn the_background_refresher_renews_grants_before_they_expire() {
    let idp = idp::start(&[("OIDC_ACCESS_TTL", "3")]);
    let dir = tempfile::tempdir().unwrap();
    let server = vault_server(&idp, dir.path(), &["--vault-refresh-every".as_ref(), "500ms".as_ref()]).await;
    let connected = connect(&server, &idp, "eddie").await;
    let grant = connected["grant_id"].as_str().unwrap().to_owned();
    let first_expiry = connected["access_expires_at"].as_str().unwrap().to_owned();
    // Nobody asks for the token; the refresher renews it anyway, before
    // it expires, and says so in the log.
    let deadline = Instant::now() + Duration::from_secs(15);
    let records = loop {
        let records = server.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await;
        if !records.is_empty() || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!records.is_empty(), "no refresh within 15 s");
    assert_eq!(records[0]["actor"], "vault:refresher", "{}", records[0]);
    let now = server.get(&format!("/v1/grants/{grant}")).await;
    assert_eq!(now.json["status"], "active", "{}", now.text);
    assert!(now.json["access_expires_at"].as_str().unwrap() > first_expiry.as_str(), "{}", now.text);
    let r = reveal(&server, "eddie").await;
    assert!(idp.introspect(r.json["credential"]["access_token"].as_str().unwrap()).await, "{}", r.text);
}

/// A resolution considers the project owner's grant before Cedar decides
/// whether the caller may use it (the token's state is part of that
/// decision). A caller denied the owner's credentials whatever the token's
/// state must not make the owner's grant refresh at the provider.
#[tokio::test]
async fn a_caller_denied_the_owners_credentials_never_refreshes_the_owners_grant() {
    let ttl = ACCESS_TTL_S.to_string();
    let idp = idp::start(&[("OIDC_ACCESS_TTL", ttl.as_str())]);
    let dir = tempfile::tempdir().unwrap();
    let server = vault_server(&idp, dir.path(), &["--vault-refresh-every".as_ref(), "10m".as_ref()]).await;
    // olivia owns `p_notebook_only`, which shares her credentials with its
    // editors (eddie) in notebooks, never in apps.
    let connected = connect(&server, &idp, "olivia").await;
    let grant = connected["grant_id"].as_str().unwrap().to_owned();
    let issued = Instant::now();
    let ask = |surface: &str| {
        json!({"principal": {"type": "User", "id": "eddie"}, "project": "p_notebook_only", "connection": "c_wh",
               "surface": surface, "reveal": true})
    };
    let due = Duration::from_secs(ACCESS_TTL_S) - Duration::from_millis(500);
    tokio::time::sleep(due.saturating_sub(issued.elapsed())).await;
    let refreshes = || async { idp.stats().await["refresh_grants"].as_u64().unwrap_or(0) };
    let before = refreshes().await;

    // In an app, eddie may not use olivia's credentials (and holds no grant
    // of his own): denied, and her grant is left as it is.
    let r = server.post("/v1/credentials/resolve", &ask("app")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["decision"], "deny", "{}", r.text);
    assert_eq!(refreshes().await, before, "a denied caller refreshed the owner's grant");
    assert!(server.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await.is_empty());

    // In a notebook he may: the grant is refreshed for him, once.
    let r = server.post("/v1/credentials/resolve", &ask("notebook")).await;
    assert_eq!(r.json["decision"], "allow", "{}", r.text);
    assert_eq!(r.json["credential"]["kind"], "owner_token", "{}", r.text);
    assert_eq!(refreshes().await, before + 1, "the allowed caller's reveal refreshed the grant");
    assert!(idp.introspect(r.json["credential"]["access_token"].as_str().unwrap()).await, "{}", r.text);
}

#[tokio::test]
async fn two_instances_refresh_an_expired_grant_once_for_a_thousand_callers() {
    let Some(db) = crate::postgres::fresh_database() else { return };
    // The first token expires at once; the refreshed one outlasts the test.
    let idp = idp::start(&[("OIDC_ACCESS_TTL", "2"), ("OIDC_REFRESHED_ACCESS_TTL", "600")]);
    let dir = tempfile::tempdir().unwrap();
    let args = vault_args(&idp, dir.path());
    let a = Server::start_on_with_args(&db, None, &args);
    a.put_entities(&crate::credentials::entities()).await;
    let b = Server::start_on_with_args(&db, Some(a.config_home()), &args);
    let grant = connect(&a, &idp, "eddie").await["grant_id"].as_str().unwrap().to_owned();
    // Expired (and b has the entities: it syncs them within a second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(b.get(&format!("/v1/grants/{grant}")).await.json["status"], "active");
    let before = idp.stats().await["refresh_grants"].as_u64().unwrap_or(0);

    // 1,000 revealing resolutions at once, half through each instance.
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            let (client, url) = (server.client.clone(), server.url("/v1/credentials/resolve"));
            tokio::spawn(async move {
                let answer = client.post(url).json(&resolve("eddie", true)).send().await.unwrap();
                (answer.status(), answer.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["decision"], "allow", "{answer}");
        tokens.insert(answer["credential"]["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(idp.stats().await["refresh_grants"].as_u64().unwrap_or(0), before + 1, "one refresh at the provider");
    assert_eq!(tokens.len(), 1, "every caller got the one refreshed token");
    assert!(idp.introspect(tokens.first().unwrap()).await, "and it is valid");
    assert_eq!(a.get(&format!("/v1/grants/{grant}")).await.json["status"], "active", "no invalid_grant");
    let refreshed = a.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await;
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    let used = a.audit_events(&format!("kind=token.used&token_id={grant}")).await;
    assert_eq!(used.len(), 1000, "one token.used per reveal");
    assert!(used.iter().all(|r| r["details"]["revealed"] == true));
}

/// `kill -9` in the middle of a refresh, while the provider holds the
/// refresh request unprocessed: the start was stored first, and after a
/// restart the grant still refreshes with the refresh token it had (none
/// was lost), checked against the provider: one refresh, no
/// `invalid_grant`, an active token.
#[tokio::test]
async fn a_refresh_cut_short_by_kill_9_refreshes_after_the_restart() {
    let idp = idp::start(&[("OIDC_ACCESS_TTL", "2"), ("OIDC_REFRESHED_ACCESS_TTL", "600")]);
    let dir = tempfile::tempdir().unwrap();
    let mut server = vault_server(&idp, dir.path(), &[]).await;
    let grant = connect(&server, &idp, "eddie").await["grant_id"].as_str().unwrap().to_owned();
    let db = server.database_path();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // The expired token's refresh reaches the provider, which holds it.
    idp.hold_next_token(1).await;
    let (client, url) = (server.client.clone(), server.url("/v1/credentials/resolve"));
    let caller = tokio::spawn(async move { client.post(url).json(&resolve("eddie", true)).send().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.held().await["waiting"] != 1 {
        assert!(Instant::now() < deadline, "the refresh never reached the provider:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let marker = format!("SELECT refresh_started_at IS NOT NULL FROM grants WHERE id = '{grant}'");
    assert_eq!(sql(&db, &marker), "1", "the start is stored before the provider hears of it");
    server.kill();
    assert!(caller.await.unwrap().is_err(), "the caller saw the server die");
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.held().await["dropped"] != 1 {
        assert!(Instant::now() < deadline, "the provider never saw the connection close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = idp.stats().await;
    assert_eq!((stats["refresh_grants"].as_u64(), stats["invalid_grant"].as_u64()), (Some(0), Some(0)), "{stats}");

    // After the restart the grant refreshes with the refresh token it had.
    server.start_again();
    let r = reveal(&server, "eddie").await;
    assert_eq!(r.json["decision"], "allow", "{}", r.text);
    let token = r.json["credential"]["access_token"].as_str().unwrap().to_owned();
    assert!(idp.introspect(&token).await, "the provider says the refreshed token is active");
    let stats = idp.stats().await;
    assert_eq!((stats["refresh_grants"].as_u64(), stats["invalid_grant"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_eq!(sql(&db, &marker), "0", "the refresh's outcome cleared its start");
    let grant_now = server.get(&format!("/v1/grants/{grant}")).await;
    assert_eq!(grant_now.json["status"], "active", "{}", grant_now.text);
    let refreshed = server.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await;
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    assert_eq!(refreshed[0]["details"]["rotation"], "rotated", "{}", refreshed[0]);
}

/// A provider outage during a refresh: the caller is told to retry (503
/// `provider_unavailable`), the attempt is audited with the provider's
/// answer, callers within the backoff wait send nothing and add no record,
/// and the first caller after it refreshes.
#[tokio::test]
async fn a_provider_outage_is_audited_backed_off_and_retried() {
    let idp = idp::start(&[("OIDC_ACCESS_TTL", "2"), ("OIDC_REFRESHED_ACCESS_TTL", "600")]);
    let dir = tempfile::tempdir().unwrap();
    let server = vault_server(&idp, dir.path(), &[]).await;
    let grant = connect(&server, &idp, "eddie").await["grant_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    idp.fail_next_token(503, 1).await;
    let r = reveal(&server, "eddie").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "provider_unavailable", "{}", r.text);
    let failed = format!("kind=vault.refresh_failed&token_id={grant}");
    let records = server.audit_events(&failed).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["details"]["outcome"], "transient", "{}", records[0]);
    assert_eq!(records[0]["details"]["provider"], "idp", "{}", records[0]);
    assert!(records[0]["details"]["provider_answer"].as_str().unwrap().contains("503"), "{}", records[0]);

    // Within the wait: refused at once, nothing sent, nothing recorded.
    let r = reveal(&server, "eddie").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    let stats = idp.stats().await;
    assert_eq!((stats["injected_failures"].as_u64(), stats["refresh_grants"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_eq!(server.audit_events(&failed).await.len(), 1);

    // After it (1 s, plus up to a quarter): refreshed.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = reveal(&server, "eddie").await;
    assert_eq!(r.json["decision"], "allow", "{}", r.text);
    assert!(idp.introspect(r.json["credential"]["access_token"].as_str().unwrap()).await);
    let stats = idp.stats().await;
    assert_eq!((stats["refresh_grants"].as_u64(), stats["invalid_grant"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_eq!(server.audit_events(&format!("kind=token.refreshed&token_id={grant}")).await.len(), 1);
}

async fn reveal(server: &Server, who: &str) -> crate::server::Reply {
    server.post("/v1/credentials/resolve", &resolve(who, true)).await
}

/// `n` revealing resolutions for `principal`, sent at once (each on its own
/// task, so all are in flight together); their answers.
async fn at_once(server: &Server, principal: &str, n: usize) -> Vec<Value> {
    let url = server.url("/v1/credentials/resolve");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, body) = (server.client.clone(), url.clone(), resolve(principal, true));
            tokio::spawn(async move {
                let answer = client.post(url).json(&body).send().await.unwrap();
                assert_eq!(answer.status(), StatusCode::OK);
                answer.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// A key rotation (docs/vault.md#rotating-the-key-encryption-key) while the
/// service serves: the new key taken on SIGHUP, every grant re-wrapped
/// under it by `warrant vault rewrap`, the old key removed, and the tokens
/// still handed out, unrefreshed. A key file that would strand a grant is
/// refused, and a grant whose refresh is in flight is left for later.
#[tokio::test]
async fn a_key_rotation_rewraps_every_grant_while_the_service_serves() {
    let idp = idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let server = vault_server(&idp, dir.path(), &[]).await;
    let db = server.database_path();
    let eddie = connect(&server, &idp, "eddie").await["grant_id"].as_str().unwrap().to_owned();
    let token_of = |r: &crate::server::Reply| r.json["credential"]["access_token"].as_str().unwrap().to_owned();
    let before = token_of(&reveal(&server, "eddie").await);

    // Step 1: the new key goes last; every instance takes it (SIGHUP).
    let kek = dir.path().join("vault.key");
    let (k1, k2, k3) = ("5a".repeat(32), "c3".repeat(32), "e7".repeat(32));
    std::fs::write(&kek, format!("k1 {k1}\nk2 {k2}\n")).unwrap();
    server.signal("HUP");
    server.wait_for_log(Duration::from_secs(10), |l| l.contains("vault keys reloaded")).await;
    // A grant made now is wrapped under the new key already.
    let erin = connect(&server, &idp, "erin").await["grant_id"].as_str().unwrap().to_owned();
    assert_eq!(sql(&db, &format!("SELECT kek_id FROM grants WHERE id = '{erin}'")), "k2");
    assert_eq!(sql(&db, &format!("SELECT kek_id FROM grants WHERE id = '{eddie}'")), "k1");

    let rewrap = || {
        warrant_command(server.config_home())
            .args(["vault", "rewrap", "--database-url", server.database_url()])
            .arg("--vault-key-file")
            .arg(&kek)
            .output()
            .unwrap()
    };
    // A grant whose refresh is in flight is left alone, and said so.
    sql(&db, &format!("UPDATE grants SET refresh_started_at = '2026-01-01T00:00:00Z' WHERE id = '{eddie}'"));
    let out = rewrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("left for another run: grant `{eddie}`")), "{stderr}");
    assert_eq!(sql(&db, &format!("SELECT kek_id FROM grants WHERE id = '{eddie}'")), "k1");
    sql(&db, &format!("UPDATE grants SET refresh_started_at = NULL WHERE id = '{eddie}'"));

    // Step 2: re-wrap, with the service running.
    let version = sql(&db, &format!("SELECT version FROM grants WHERE id = '{eddie}'"));
    let out = rewrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("re-wrapped 1 grant(s) under vault key `k2`; 1 already were"), "{stderr}");
    assert!(stderr.contains("before: k1: 1, k2: 1; after: k2: 2"), "{stderr}");
    assert_eq!(sql(&db, "SELECT group_concat(DISTINCT kek_id) FROM grants"), "k2");
    let after: i64 = sql(&db, &format!("SELECT version FROM grants WHERE id = '{eddie}'")).parse().unwrap();
    assert_eq!(after, version.parse::<i64>().unwrap() + 1, "the write names the version it read");
    let records = server.audit_events("kind=vault.rewrapped").await;
    assert_eq!(records.len(), 2, "each run is audited: {records:?}");
    assert_eq!(records[1]["details"]["rewrapped"], 1, "{}", records[1]);
    assert_eq!(records[1]["details"]["after"], json!({"k2": 2}), "{}", records[1]);

    // Step 3: the old key goes. The same token is handed out: only the
    // wrapping changed, not the data key or anything it sealed.
    std::fs::write(&kek, format!("k2 {k2}\n")).unwrap();
    server.signal("HUP");
    server.wait_for_log(Duration::from_secs(10), |l| l.matches("vault keys reloaded").count() >= 2).await;
    assert_eq!(token_of(&reveal(&server, "eddie").await), before);
    assert!(idp.introspect(&token_of(&reveal(&server, "erin").await)).await);

    // A key file without a key grants are still under is refused whole.
    std::fs::write(&kek, format!("k3 {k3}\n")).unwrap();
    server.signal("HUP");
    server.wait_for_log(Duration::from_secs(10), |l| l.contains("vault keys not reloaded")).await;
    assert!(server.logs().contains("2 grant(s) are wrapped under vault key `k2`"), "{}", server.logs());
    assert_eq!(token_of(&reveal(&server, "eddie").await), before, "the keys in use stayed");

    // A database that is not there is not made (a mistyped URL).
    let missing = dir.path().join("typo.db");
    let out = warrant_command(server.config_home())
        .args(["vault", "rewrap", "--database-url", &format!("sqlite://{}", missing.display())])
        .arg("--vault-key-file")
        .arg(&kek)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!missing.exists(), "rewrap created a database");
}

/// `sql` run on the database file with the `sqlite3` shell; its output.
fn sql(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3 (tests/run installs it)");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
