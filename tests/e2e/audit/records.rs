//! What the log records and how auditors read it back: every kind as
//! specified, filters and cursor pages, a gap-free `seq` under concurrency
//! and across `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{authorize, cli, populate, verify};
use crate::credentials::{FUTURE, event, resolve, setup};
use crate::server::{bundle_files, pack_dir, send_raw};

#[tokio::test]
async fn every_kind_is_recorded_as_specified() {
    let server = setup().await;
    let digest = server.digest().await;
    let startup = server.audit_events("kind=policy.updated").await;
    assert_eq!(startup.len(), 1, "{startup:?}");
    assert_eq!((&startup[0]["actor"], &startup[0]["policy_digest"]), (&json!("startup"), &json!(digest)));

    let mut acks = Vec::new();
    for (kind, actor, expires, status) in [
        ("token.issued", None, FUTURE, "active"),
        ("token.refreshed", None, "2098-06-01T12:00:00+02:00", "active"),
        ("token.expired", Some("scheduler"), "", "expired"),
        ("token.revoked", Some("adam"), "", "revoked"),
    ] {
        let mut body =
            json!({"kind": kind, "token_id": "tok-k", "owner": "eddie", "connection": "c_wh", "role": "ANALYST"});
        if let Some(a) = actor {
            body["actor"] = json!(a);
        }
        if !expires.is_empty() {
            body["expires_at"] = json!(expires);
        }
        let r = server.post("/v1/tokens/events", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["token"]["status"], status);
        acks.push((kind, actor.unwrap_or("eddie"), r.json));
    }
    let token = server.audit_digest("tok-k").await;
    let records = server.audit_events("token=tok-k").await;
    assert_eq!(records.len(), 4);
    for ((kind, actor, ack), record) in acks.iter().zip(&records) {
        assert_eq!((&record["seq"], &record["mac"]), (&ack["seq"], &ack["mac"]), "the answer names the stored record");
        assert_eq!((&record["kind"], &record["actor"]), (&json!(kind), &json!(actor)));
        assert_eq!(
            (&record["token_id"], &record["token_owner"], &record["connection"]),
            (&json!(token), &json!("eddie"), &json!("c_wh"))
        );
        for key in ["status", "role", "expires_at"] {
            assert_eq!(record["details"][key], ack["token"][key], "{key}: {record}");
        }
        assert!(record.get("decision").is_none() && record.get("project").is_none(), "{record}");
    }
    assert_eq!(records[1]["details"]["expires_at"], "2098-06-01T10:00:00.000Z", "expiry normalised to UTC");

    // token.used: one per resolution (covered in depth by credentials.rs).
    event(&server, "token.issued", "tok-k2", "eddie", "c_wh", "ANALYST", FUTURE).await;
    resolve(&server, "eddie", "p_disabled", "c_wh", "schedule").await;
    let used = server.audit_events("kind=token.used").await;
    assert_eq!(used.len(), 1);
    assert_eq!(
        (&used[0]["token_id"], &used[0]["details"]["surface"]),
        (&json!(server.audit_digest("tok-k2").await), &json!("schedule"))
    );

    // decision: the decision id the caller got is in the record.
    let allowed = authorize(&server, "eddie", "view_notebook", "p_disabled").await;
    let denied = authorize(&server, "nadia", "view_notebook", "p_disabled").await;
    let decisions = server.audit_events("kind=decision").await;
    assert_eq!(decisions.len(), 2);
    for (answer, record, who) in [(&allowed, &decisions[0], "eddie"), (&denied, &decisions[1], "nadia")] {
        assert_eq!(record["details"]["decision_id"], answer["decision_id"], "{record}");
        assert_eq!(record["decision"], answer["decision"]);
        assert_eq!(record["reasons"], answer["reasons"]);
        assert_eq!(record["policy_digest"], answer["policy_digest"]);
        assert_eq!(record["actor"], format!("User::{who}"));
        assert_eq!(record["details"]["action"], "view_notebook");
    }
    assert_eq!((&decisions[0]["decision"], &decisions[1]["reasons"]), (&json!("allow"), &json!(["no_permit"])));

    // policy.updated: the new digest and the previous one.
    let mut files = bundle_files(&pack_dir());
    files.insert(
        "marker.cedar".into(),
        json!("@id(\"T.marker\")\npermit (principal == Analytics::User::\"nobody\", action, resource);\n"),
    );
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_digest = server.digest().await;
    assert_ne!(new_digest, digest);
    let updates = server.audit_events("kind=policy.updated").await;
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[1]["policy_digest"], new_digest);
    assert_eq!(updates[1]["details"]["previous_digest"], digest);

    // The whole log: seq from 1 without gaps, each record chained to the one before.
    let all = server.audit_events("").await;
    let mut prev = "0".repeat(64);
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record["seq"], i as u64 + 1);
        assert_eq!(record["prev_mac"], prev.as_str(), "{record}");
        let ts = record["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() >= 20 && &ts[10..11] == "T", "RFC 3339 UTC: {ts}");
        assert_eq!(record["key_id"], all[0]["key_id"]);
        prev = record["mac"].as_str().unwrap().to_owned();
        assert!(prev.len() == 64 && prev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{prev}");
    }
}

type Filter = Box<dyn Fn(&Value) -> bool>;

#[tokio::test]
async fn event_filters_and_cursor_pages_return_exactly_the_matching_records() {
    let server = setup().await;
    populate(&server).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    populate(&server).await;
    let all = server.audit_events("").await;
    let ts = |i: usize| all[i]["ts"].as_str().unwrap().to_owned();
    let (t1, t2) = (ts(all.len() / 3), ts(2 * all.len() / 3));
    let eddie_token = server.audit_digest("tok-eddie").await;
    let field = |name: &'static str, value: String| -> Filter { Box::new(move |r: &Value| r[name] == value.as_str()) };
    let cases: Vec<(String, Filter)> = vec![
        ("kind=token.used".into(), field("kind", "token.used".into())),
        (
            "kind=decision&decision=deny".into(),
            Box::new(|r: &Value| r["kind"] == "decision" && r["decision"] == "deny"),
        ),
        ("actor=User::eddie".into(), field("actor", "User::eddie".into())),
        ("actor=olivia".into(), field("actor", "olivia".into())),
        ("token=tok-eddie".into(), field("token_id", eddie_token)),
        ("connection=c_fixed".into(), field("connection", "c_fixed".into())),
        ("project=p_notebook_only".into(), field("project", "p_notebook_only".into())),
        ("decision=allow".into(), field("decision", "allow".into())),
        ("decision=deny".into(), field("decision", "deny".into())),
        (format!("since={t1}"), {
            let t = t1.clone();
            Box::new(move |r: &Value| r["ts"].as_str().unwrap() >= t.as_str())
        }),
        (format!("until={t2}"), {
            let t = t2.clone();
            Box::new(move |r: &Value| r["ts"].as_str().unwrap() < t.as_str())
        }),
        (format!("since={t1}&until={t2}&kind=token.used"), {
            let (a, b) = (t1.clone(), t2.clone());
            Box::new(move |r: &Value| {
                r["kind"] == "token.used" && (a.as_str()..b.as_str()).contains(&r["ts"].as_str().unwrap())
            })
        }),
    ];
    let seqs = |records: &[Value]| records.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>();
    for (query, matches) in &cases {
        let want: Vec<Value> = all.iter().filter(|r| matches(r)).cloned().collect();
        assert!(!want.is_empty() && want.len() < all.len(), "{query}: the case must select a strict subset");
        assert_eq!(seqs(&server.audit_events(query).await), seqs(&want), "{query}");
        // Cursor pages of 2: the same records, each once, in order.
        let (mut paged, mut cursor) = (Vec::new(), 0);
        loop {
            let r = server.get(&format!("/v1/audit/events?{query}&limit=2&cursor={cursor}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let page = r.json["events"].as_array().unwrap().clone();
            assert!(page.len() <= 2);
            paged.extend(page.iter().cloned());
            match r.json["next_cursor"].as_u64() {
                Some(next) => {
                    assert_eq!(Some(next), page.last().and_then(|p| p["seq"].as_u64()), "the cursor is the last seq");
                    cursor = next;
                }
                None => break,
            }
        }
        assert_eq!(paged, want, "{query}: pages");
    }
    for bad in ["limit=0", "limit=1001", "decision=maybe", "since=yesterday", "until=2026-13-01T00:00:00Z"] {
        let r = server.get(&format!("/v1/audit/events?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_stays_gap_free_under_200_concurrent_decisions() {
    let server = setup().await;
    let url = server.url("/v1/authorize");
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (client, url) = (server.client.clone(), url.clone());
            let who = ["eddie", "nadia", "vera", "olivia"][i % 4];
            tokio::spawn(async move {
                let body = json!({"principal": {"type": "User", "id": who}, "action": "view_notebook",
                                  "resource": {"type": "Project", "id": "p_disabled"}});
                let r = send_raw(&client, Method::POST, &url, Some("application/json"), body.to_string().into_bytes())
                    .await
                    .expect("send");
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                r.json["decision_id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap());
    }
    assert_eq!(ids.len(), 200);
    let all = server.audit_events("").await;
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>(), "seq is 1..=N, each once");
    let recorded: BTreeSet<String> = all
        .iter()
        .filter(|r| r["kind"] == "decision")
        .map(|r| r["details"]["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded, ids, "one decision record per answered decision");
    let report = verify(&server, "").await;
    assert_eq!((&report["ok"], &report["records"]), (&json!(true), &json!(all.len())), "{report}");
    assert_eq!(cli(&server, &server.database_path(), &["verify"]).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event() {
    let mut server = setup().await;
    let acked = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let refused = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = server.url("/v1/tokens/events");
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (client, url, acked, refused) =
                (server.client.clone(), url.clone(), Arc::clone(&acked), Arc::clone(&refused));
            tokio::spawn(async move {
                for i in 0u64.. {
                    let body = json!({"kind": "token.issued", "token_id": format!("tok-{t}-{i}"), "owner": "eddie",
                                      "connection": "c_wh", "role": "ANALYST", "expires_at": FUTURE});
                    let sent =
                        send_raw(&client, Method::POST, &url, Some("application/json"), body.to_string().into_bytes());
                    match sent.await {
                        Ok(r) if r.status == StatusCode::CREATED => {
                            let ack = (r.json["seq"].as_u64().unwrap(), r.json["mac"].as_str().unwrap().to_owned());
                            acked.lock().unwrap().push(ack);
                        }
                        Ok(r) => return refused.lock().unwrap().push(format!("{}: {}", r.status, r.text)),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "events are not being acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(refused.lock().unwrap().is_empty(), "refused while running: {:?}", refused.lock().unwrap());
    server.start_again();

    let all = server.audit_events("").await;
    let stored: BTreeMap<u64, String> =
        all.iter().map(|r| (r["seq"].as_u64().unwrap(), r["mac"].as_str().unwrap().to_owned())).collect();
    assert_eq!(stored.keys().copied().collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    let acked = acked.lock().unwrap().clone();
    for (seq, mac) in &acked {
        assert_eq!(stored.get(seq), Some(mac), "acknowledged record {seq} lost or changed by kill -9");
    }
    let report = verify(&server, "").await;
    assert_eq!(report["ok"], true, "{report}");
    // The chain goes on from where it stopped.
    let next = event(&server, "token.issued", "tok-after", "eddie", "c_wh", "ANALYST", FUTURE).await;
    assert_eq!(next["seq"], all.len() as u64 + 1);
    assert_eq!(verify(&server, "").await["ok"], true);
    assert_eq!(cli(&server, &server.database_path(), &["verify"]).0, 0);
}
