//! The vault's OAuth client (`service/src/vault/provider.rs`) against a real
//! authorization server: npm `oidc-provider` (`tests/oidc/`), with PKCE
//! required, refresh-token rotation and reuse detection, revocation and
//! introspection. `tests/run` installs it and sets `WARRANT_TEST_OIDC_DIR`;
//! run alone, the test uses `tests/oidc/` and says how to install it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use warrant_service::vault::config::VaultConfig;
use warrant_service::vault::provider::{Provider, ProviderError, http_client};

/// warrant's callback, on any loopback port (the fixture matches RFC 8252's
/// way: the registered `http://127.0.0.1/v1/grants/callback`, any port).
const REDIRECT: &str = "http://127.0.0.1:9/v1/grants/callback";

/// A running oidc-provider, stopped on drop.
struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture_dir() -> PathBuf {
    let dir = std::env::var_os("WARRANT_TEST_OIDC_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc"), PathBuf::from);
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed in {}: run tests/oidc/install.sh (tests/run does)",
        dir.display()
    );
    dir
}

fn start_idp() -> Idp {
    let dir = fixture_dir();
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("PORT", "0")
        .env("OIDC_AUTO_LOGIN", "alice")
        .env("OIDC_EXIT_WITH_STDIN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node tests/oidc/provider.mjs (is node installed?)");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line `{line}`: {e}"));
    assert_eq!(ready["ready"], true, "{line}");
    Idp { child, issuer: ready["issuer"].as_str().unwrap().to_owned() }
}

async fn provider(idp: &Idp) -> Provider {
    let file = json!({
        "providers": {"idp": {"issuer": idp.issuer, "client_id": "warrant",
                              "client_secret_env": "IDP_SECRET", "scopes": ["openid", "offline_access"]}},
        "connections": {"snowflake": {"provider": "idp"}},
    });
    let env = |var: &str| (var == "IDP_SECRET").then(|| "warrant-test-secret".to_owned());
    let config = VaultConfig::parse(&file.to_string(), "vault.json", &env).unwrap();
    Provider::connect("idp", &config.providers["idp"], REDIRECT, &http_client().unwrap()).await.unwrap()
}

/// What a browser does between the authorization URL and warrant's
/// callback: follow the provider's redirects, keeping its cookies (the
/// fixture logs `alice` in and consents on its own). Returns the callback's
/// query parameters.
async fn browse(url: &str) -> Vec<(String, String)> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut cookies: Vec<(String, String)> = Vec::new();
    let mut next = reqwest::Url::parse(url).unwrap();
    for _ in 0..12 {
        if next.as_str().starts_with(REDIRECT) {
            return next.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        }
        let cookie = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let response = http.get(next.clone()).header("cookie", cookie).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            cookies.retain(|(k, _)| k != name);
            cookies.push((name.to_owned(), value.to_owned()));
        }
        let status = response.status();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let Some(location) = location else {
            panic!("{next} answered {status} with no redirect: {}", response.text().await.unwrap_or_default());
        };
        next = next.join(&location).unwrap();
    }
    panic!("too many redirects before the callback");
}

async fn introspect(idp: &Idp, token: &str) -> bool {
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/token/introspection", idp.issuer))
        .basic_auth("warrant", Some("warrant-test-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        // oidc-provider's tokens are base64url: nothing to percent-encode.
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["active"].as_bool().unwrap()
}

async fn stats(idp: &Idp) -> Value {
    reqwest::get(format!("{}/test/stats", idp.issuer)).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_grant_is_obtained_refreshed_with_rotation_and_revoked_at_a_real_provider() {
    let idp = start_idp();
    let provider = provider(&idp).await;
    assert!(provider.endpoints().token.starts_with(&idp.issuer), "discovered: {:?}", provider.endpoints());
    assert!(provider.endpoints().revocation.is_some(), "discovered: {:?}", provider.endpoints());

    let authorization = provider.authorize();
    let url = authorization.url.as_str();
    assert!(url.contains("code_challenge_method=S256") && url.contains("state="), "{url}");
    assert!(!url.contains(authorization.pkce_verifier.as_str()), "the verifier stays with warrant");
    let callback = browse(url).await;
    let param = |name: &str| callback.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(param("state").as_deref(), Some(authorization.state.as_str()), "{callback:?}");
    let code = param("code").unwrap_or_else(|| panic!("no code: {callback:?}"));

    // A wrong verifier is refused (PKCE), and does not use the code up.
    let wrong = provider.exchange(&code, "not-the-verifier-not-the-verifier-not-the-verifier").await;
    assert!(matches!(wrong, Err(ProviderError::InvalidGrant(_))), "{wrong:?}");
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let first = tokens.refresh_token.clone().expect("a refresh token");
    assert!(tokens.expires_in.is_some(), "{tokens:?}");
    assert!(introspect(&idp, &tokens.access_token).await);

    // Rotation: a new refresh token each time.
    let refreshed = provider.refresh(&first).await.unwrap();
    let second = refreshed.refresh_token.clone().expect("a rotated refresh token");
    assert_ne!(first.as_str(), second.as_str());
    assert!(introspect(&idp, &refreshed.access_token).await);
    assert_eq!(stats(&idp).await["refresh_grants"], 1);

    // The old one, presented again, is `invalid_grant`: what the vault must
    // never do (the provider then ends the whole grant: reuse detection).
    let reused = provider.refresh(&first).await;
    assert!(matches!(reused, Err(ProviderError::InvalidGrant(_))), "{reused:?}");
    assert!(!introspect(&idp, &refreshed.access_token).await, "reuse ended the grant");

    // A second grant, revoked (RFC 7009).
    let authorization = provider.authorize();
    let callback = browse(authorization.url.as_str()).await;
    let code = callback.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).unwrap();
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();
    provider.revoke(&refresh).await.unwrap();
    assert!(!introspect(&idp, &refresh).await, "revoked at the provider");
    let after = provider.refresh(&refresh).await;
    assert!(matches!(after, Err(ProviderError::InvalidGrant(_))), "{after:?}");
}

#[tokio::test]
async fn provider_outages_are_transient_and_use_nothing_up() {
    let idp = start_idp();
    let provider = provider(&idp).await;
    let authorization = provider.authorize();
    let callback = browse(authorization.url.as_str()).await;
    let code = callback.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).unwrap();
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();

    let failing = reqwest::Client::new()
        .post(format!("{}/test/fail-next-token", idp.issuer))
        .json(&json!({"status": 503, "count": 1}))
        .send()
        .await
        .unwrap();
    assert!(failing.status().is_success());
    let outage = provider.refresh(&refresh).await;
    assert!(matches!(outage, Err(ProviderError::Transient(_))), "{outage:?}");
    // The refresh token was not used: it still refreshes.
    let refreshed = provider.refresh(&refresh).await.unwrap();
    assert!(refreshed.refresh_token.is_some());
    assert_eq!(stats(&idp).await["refresh_grants"], 1);
}

#[tokio::test]
async fn discovery_refuses_an_issuer_that_is_not_the_one_configured() {
    let idp = start_idp();
    // The metadata names `http://127.0.0.1:PORT`; the same server reached as
    // `localhost` is another issuer (RFC 8414 §3.3).
    let other = idp.issuer.replace("127.0.0.1", "localhost");
    let file = json!({"providers": {"idp": {"issuer": other, "client_id": "warrant", "client_secret_env": "S"}},
                      "connections": {}});
    let config = VaultConfig::parse(&file.to_string(), "vault.json", &|_| Some("x".to_owned())).unwrap();
    let error =
        Provider::connect("idp", &config.providers["idp"], REDIRECT, &http_client().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("names the issuer"), "{error}");
}
