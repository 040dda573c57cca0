//! Driving the test authorization server (`tests/oidc/provider.mjs`, npm
//! `oidc-provider`) from Rust tests: start it, play the browser between an
//! authorization URL and warrant's callback, introspect tokens, read its
//! counters. Included by the tests that need it with `#[path]`, so the
//! service's tests and the end-to-end tests share one driver.
//!
//! `tests/run` installs the server and sets `WARRANT_TEST_OIDC_DIR`; run
//! alone, a test uses `tests/oidc/` and says how to install it.

#![allow(dead_code, reason = "each including test uses part of the driver")]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// The fixture's confidential client.
pub const CLIENT_ID: &str = "warrant";
pub const CLIENT_SECRET: &str = "warrant-test-secret";

/// A running oidc-provider, stopped on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
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

/// Starts the server on a free loopback port, `alice` logged in and
/// consenting on her own; `env` adds settings (`OIDC_ACCESS_TTL`, …).
pub fn start(env: &[(&str, &str)]) -> Idp {
    let dir = fixture_dir();
    let mut command = Command::new("node");
    command
        .arg(dir.join("provider.mjs"))
        .env("PORT", "0")
        .env("OIDC_AUTO_LOGIN", "alice")
        .env("OIDC_EXIT_WITH_STDIN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start node tests/oidc/provider.mjs (is node installed?)");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the ready line");
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line `{line}`: {e}"));
    assert_eq!(ready["ready"], true, "{line}");
    Idp { child, issuer: ready["issuer"].as_str().expect("issuer").to_owned() }
}

impl Idp {
    /// What a browser does between the authorization URL and warrant's
    /// callback: follows the provider's redirects, keeping its cookies.
    /// Returns the URL of the callback (`…/v1/grants/callback?…`), not
    /// followed.
    pub async fn browse(&self, url: &str) -> reqwest::Url {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut next = reqwest::Url::parse(url).expect("an authorization URL");
        for _ in 0..12 {
            if next.path() == "/v1/grants/callback" {
                return next;
            }
            let cookie = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            let response = http.get(next.clone()).header("cookie", cookie).send().await.expect("the provider answers");
            for set in response.headers().get_all("set-cookie") {
                let pair = set.to_str().expect("a cookie").split(';').next().unwrap_or_default();
                let (name, value) = pair.split_once('=').expect("name=value");
                cookies.retain(|(k, _)| k != name);
                cookies.push((name.to_owned(), value.to_owned()));
            }
            let status = response.status();
            let location = response.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned());
            let Some(location) = location else {
                panic!("{next} answered {status} with no redirect: {}", response.text().await.unwrap_or_default());
            };
            next = next.join(&location).expect("a location");
        }
        panic!("too many redirects before the callback");
    }

    /// Whether the provider says `token` is active (RFC 7662).
    pub async fn introspect(&self, token: &str) -> bool {
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            // oidc-provider's tokens are base64url: nothing to percent-encode.
            .body(format!("token={token}"))
            .send()
            .await
            .expect("introspection answers")
            .json()
            .await
            .expect("JSON");
        answer["active"].as_bool().expect("`active`")
    }

    /// The server's counters (`refresh_grants`, …).
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/test/stats", self.issuer)).await.expect("stats").json().await.expect("JSON")
    }

    /// Every access and refresh token the provider has issued, in order.
    pub async fn issued(&self) -> Vec<String> {
        let answer: Value =
            reqwest::get(format!("{}/test/issued", self.issuer)).await.expect("issued").json().await.expect("JSON");
        answer["tokens"].as_array().expect("tokens").iter().map(|t| t.as_str().expect("text").to_owned()).collect()
    }

    /// Holds the next `count` token requests until [`Idp::release_held`],
    /// or until their client's connection closes (then they are dropped
    /// unprocessed).
    pub async fn hold_next_token(&self, count: u32) {
        let answer = reqwest::Client::new()
            .post(format!("{}/test/hold-next-token", self.issuer))
            .json(&json!({"count": count}))
            .send()
            .await
            .expect("the control route");
        assert!(answer.status().is_success());
    }

    /// What the holds did: `waiting`, `held`, `released`, `dropped`.
    pub async fn held(&self) -> Value {
        reqwest::get(format!("{}/test/held", self.issuer)).await.expect("held").json().await.expect("JSON")
    }

    /// Makes the next `count` token requests fail with `status`.
    pub async fn fail_next_token(&self, status: u16, count: u32) {
        let answer = reqwest::Client::new()
            .post(format!("{}/test/fail-next-token", self.issuer))
            .json(&json!({"status": status, "count": count}))
            .send()
            .await
            .expect("the control route");
        assert!(answer.status().is_success());
    }
}
