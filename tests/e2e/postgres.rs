//! Several `warrant serve` instances on one PostgreSQL database: one
//! gap-free chain under concurrent load, nothing acknowledged lost when an
//! instance is killed, and changes made through one instance used by the
//! others within the sync bound.
//!
//! Needs `WARRANT_TEST_POSTGRES_URL` (an admin URL; `tests/run` starts a
//! throwaway server and sets it). Under CI, a missing URL fails the tests:
//! nothing PostgreSQL-related is silently skipped.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Server, warrant_command};

/// The propagation bound the service promises: its sync interval (1 s by
/// default) plus time to reload.
const SYNC_BOUND: Duration = Duration::from_secs(3);

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh database on the test server, or `None` (outside CI) when there is
/// no server to use.
pub(crate) fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("WARRANT_TEST_POSTGRES_URL") else {
        assert!(std::env::var_os("CI").is_none(), "WARRANT_TEST_POSTGRES_URL is not set: run the suite with tests/run");
        eprintln!("skipping: WARRANT_TEST_POSTGRES_URL is not set (tests/run sets it)");
        return None;
    };
    let name = format!("warrant_e2e_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::SeqCst));
    let out =
        Command::new("psql").arg(&admin).args(["-qc", &format!("CREATE DATABASE {name}")]).output().expect("run psql");
    assert!(out.status.success(), "create database: {}", String::from_utf8_lossy(&out.stderr));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    Some(format!("{base}/{name}"))
}

fn event(token: &str) -> Value {
    json!({"kind": "token.issued", "token_id": token, "owner": format!("owner-{token}"), "connection": "snow",
           "role": "ANALYST", "expires_at": "2030-01-01T00:00:00Z", "details": {"access_token": "ya29.secret"}})
}

/// Sends `count` token events round-robin to `servers`' base URLs from
/// `tasks` concurrent tasks; returns every acknowledged `(seq, mac)`.
async fn load(servers: Vec<(String, reqwest::Client)>, count: usize, tasks: usize, prefix: &str) -> Vec<(u64, String)> {
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let next = std::sync::Arc::clone(&next);
        let servers = servers.clone();
        let prefix = prefix.to_owned();
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return acked;
                }
                let (base, client) = &servers[i % servers.len()];
                let url = format!("{base}/v1/tokens/events");
                let Ok(r) = client.post(&url).json(&event(&format!("{prefix}{i}"))).send().await else { continue };
                if r.status() == reqwest::StatusCode::CREATED {
                    let body: Value = r.json().await.expect("json");
                    acked.push((body["seq"].as_u64().expect("seq"), body["mac"].as_str().expect("mac").to_owned()));
                }
                // Decisions interleave with the events on the same chain.
                let _ = client
                    .post(format!("{base}/v1/authorize"))
                    .json(&json!({"principal": {"type": "User", "id": "u"}, "action": "view_notebook", "resource": {"type": "Project", "id": "p"}}))
                    .send()
                    .await;
            }
        }));
    }
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.expect("task"));
    }
    acked
}

/// Verifies the chain offline and returns every record by seq.
fn verify_and_export(server: &Server, database_url: &str) -> BTreeMap<u64, Value> {
    let verify = warrant_command(server.config_home())
        .args(["audit", "verify", "--database-url", database_url])
        .output()
        .expect("audit verify");
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let export = warrant_command(server.config_home())
        .args(["audit", "export", "--database-url", database_url])
        .output()
        .expect("audit export");
    assert!(export.status.success());
    let records: BTreeMap<u64, Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("record");
            (v["seq"].as_u64().expect("seq"), v)
        })
        .collect();
    let seqs: Vec<u64> = records.keys().copied().collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "the chain is gap-free from 1");
    records
}

fn assert_all_present(records: &BTreeMap<u64, Value>, acked: &[(u64, String)]) {
    for (seq, mac) in acked {
        let record = records.get(seq).unwrap_or_else(|| panic!("acknowledged seq {seq} is missing"));
        assert_eq!(record["mac"], json!(mac), "seq {seq} is not the record that was acknowledged");
    }
    let unique: std::collections::BTreeSet<u64> = acked.iter().map(|(s, _)| *s).collect();
    assert_eq!(unique.len(), acked.len(), "two acknowledgements share a seq");
}

#[tokio::test]
async fn two_instances_write_one_gap_free_chain() {
    let Some(db) = fresh_database() else { return };
    let a = Server::start_on(&db, None);
    let b = Server::start_on(&db, Some(a.config_home()));
    let acked = load(vec![(a.base.clone(), a.client.clone()), (b.base.clone(), b.client.clone())], 240, 16, "t").await;
    assert_eq!(acked.len(), 240, "every event was acknowledged");
    let records = verify_and_export(&a, &db);
    assert_all_present(&records, &acked);
    let decisions = records.values().filter(|r| r["kind"] == "decision").count();
    assert!(decisions >= 200, "decisions from both instances are on the chain too ({decisions})");
    // Both instances wrote: their api keys differ, and each minted one.
    assert_eq!(records.values().filter(|r| r["kind"] == "api_key.created").count(), 2);
    // Redaction holds on PostgreSQL too.
    assert!(!records.values().any(|r| r.to_string().contains("ya29.secret")));

    // One sequence of checkpoints: both instances sign with the log key they
    // share, both serve the newest, and every published note verifies with
    // the public key and holds for the records.
    let n = records.len().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let (from_a, from_b) = (a.get("/log/checkpoint").await.text, b.get("/log/checkpoint").await.text);
        if from_a.lines().nth(1) == Some(n.as_str()) && from_a == from_b {
            break from_a;
        }
        assert!(Instant::now() < deadline, "no common checkpoint of size {n}:\n{from_a}\n{from_b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = warrant_command(a.config_home()).args(["audit", "public-key"]).output().expect("public-key");
    let vkey = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(newest.contains(vkey.split('+').next().unwrap_or("?")), "signed by the shared key's name");
    let verify = warrant_command(a.config_home())
        .args(["audit", "verify", "--database-url", &db, "--log-key", &vkey])
        .output()
        .expect("audit verify");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{stdout}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(stdout.contains("checkpoint(s) hold") && !stdout.contains(" 0 checkpoint"), "{stdout}");
}

#[tokio::test]
async fn killing_an_instance_mid_load_loses_no_acknowledged_event() {
    let Some(db) = fresh_database() else { return };
    let mut a = Server::start_on(&db, None);
    let b = Server::start_on(&db, Some(a.config_home()));
    let targets = vec![(a.base.clone(), a.client.clone()), (b.base.clone(), b.client.clone())];
    let loader = tokio::spawn(load(targets, 400, 12, "k"));
    // Let the load get going, then kill A without warning.
    let started = Instant::now();
    loop {
        let n = b.audit_events("kind=token.issued").await.len();
        if n >= 60 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    let acked = loader.await.expect("loader");
    assert!(acked.len() >= 60, "load was acknowledged before and after the kill ({})", acked.len());
    let records = verify_and_export(&b, &db);
    assert_all_present(&records, &acked);
}

#[tokio::test]
async fn a_change_through_one_instance_is_used_by_the_other_within_the_bound() {
    let Some(db) = fresh_database() else { return };
    let a = Server::start_on(&db, None);
    let b = Server::start_on(&db, Some(a.config_home()));
    let before = b.get("/v1/policies").await.json["digest"].as_str().expect("digest").to_owned();

    let mut files = crate::server::bundle_files(&crate::server::pack_dir());
    files.insert(
        "zz_extra.cedar".into(),
        json!("@id(\"extra.view\")\npermit (principal, action == Analytics::Action::\"view_notebook\", resource);\n"),
    );
    let put = a.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(put.status, reqwest::StatusCode::OK, "{}", put.text);
    let new = put.json["digest"].as_str().expect("digest").to_owned();
    assert_ne!(new, before);

    let ask = json!({"principal": {"type": "User", "id": "anyone"}, "action": "view_notebook", "resource": {"type": "Project", "id": "p"}});
    let started = Instant::now();
    loop {
        let d = b.post("/v1/authorize", &ask).await.json;
        if d["policy_digest"] == json!(new) {
            assert_eq!(d["decision"], "allow", "B decides with A's new policy");
            break;
        }
        assert!(started.elapsed() < SYNC_BOUND, "B still uses {} after {:?}", d["policy_digest"], started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Entities too.
    let entity = json!({"uid": {"type": "Analytics::Group", "id": "g1"}, "attrs": {}, "parents": []});
    assert_eq!(a.put("/v1/entities", &json!([entity])).await.status, reqwest::StatusCode::OK);
    let started = Instant::now();
    while b.get("/v1/entities").await.json.as_array().map_or(0, Vec::len) != 1 {
        assert!(started.elapsed() < SYNC_BOUND);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen_by_b = b.post("/access/v1/search/resource", &json!({"subject": {"type": "User", "id": "x"}, "action": {"name": "view_notebook"}, "resource": {"type": "Project"}})).await;
    assert_eq!(seen_by_b.status, reqwest::StatusCode::OK);
}

/// Two instances on one database publish one sequence of checkpoints, and
/// one witness follows it: each instance submits what it publishes (the
/// second submission of a size is answered 409 with that size and costs
/// nothing), the witness cosigns every size it is shown in order, and
/// neither instance is ever refused as inconsistent.
#[tokio::test]
async fn one_witness_follows_two_instances() {
    let Some(db) = fresh_database() else { return };
    let origin = ["--log-origin", "example.com/pg-witnessed", "--checkpoint-interval", "50ms"];
    let mut a = Server::start_on_with_args(&db, None, &origin);
    let out = warrant_command(a.config_home()).args(["audit", "public-key"]).output().expect("public-key");
    let log_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let witness = crate::witness::Witness::start(&log_key);
    let witnessing = [format!("{}={}", witness.url(), witness.vkey()), "--witness-quorum".into(), "1".into()];
    a.stop();
    a.add_args(&["--witness"]);
    a.add_args(&witnessing);
    a.start_again();
    let mut args: Vec<String> = origin.iter().map(|a| (*a).to_owned()).collect();
    args.push("--witness".into());
    args.extend(witnessing);
    let b = Server::start_on_with_args(&db, Some(a.config_home()), &args);

    let acked = load(vec![(a.base.clone(), a.client.clone()), (b.base.clone(), b.client.clone())], 120, 8, "w").await;
    assert_eq!(acked.len(), 120);
    let n = verify_and_export(&a, &db).len().to_string();
    // Both serve the same checkpoint of the whole log, cosigned.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (from_a, from_b) = (a.get("/log/checkpoint").await.text, b.get("/log/checkpoint").await.text);
        if from_a.lines().nth(1) == Some(n.as_str()) && from_a == from_b {
            assert!(from_a.contains("\u{2014} witness.example/e2e "), "{from_a}");
            break;
        }
        assert!(Instant::now() < deadline, "no common witnessed checkpoint of size {n}:\n{from_a}\n{from_b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for server in [&a, &b] {
        assert!(!server.logs().contains("a witness refused"), "{}", server.logs());
    }
    assert!(!witness.logs().contains("\"status\":422"), "{}", witness.logs());
}
