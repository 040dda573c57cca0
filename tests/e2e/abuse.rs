//! What an outsider can make the service keep (issue 19): unauthenticated
//! traffic is counted and summarised, never recorded one per request.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::webhooks::{secret, start, summaries};

/// 10,000 unauthenticated requests of every kind (made-up webhook sources
/// with bodies, bad signatures, garbage and forged API keys, no key at
/// all) grow the log by one summary record per source and reason, whose
/// counts add up to what was refused. The summaries are written on the
/// minute timer (the default) or, as here, when the service stops.
#[tokio::test]
async fn unauthenticated_traffic_grows_the_log_by_summaries_only() {
    let (mut server, _dir) =
        start(&json!({"sources": {"okta": {"scheme": "standard", "secrets": [secret(1).1]}}})).await;
    // This test wants the default (a minute), not the webhook tests' 200 ms.
    server.extra_args.retain(|a| a != "--rejection-summary-interval-ms" && a != "200");
    server.restart();
    let before = server.audit_events("").await.len();

    const TOTAL: usize = 10_000;
    const TASKS: usize = 16;
    let body = "x".repeat(4096);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (base, body) = (server.url(""), body.clone());
        let client = reqwest::Client::new();
        tasks.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::<(usize, u16), usize>::new();
            for i in (t..TOTAL).step_by(TASKS) {
                let kind = i % 5;
                let request = match kind {
                    0 => client.post(format!("{base}/v1/webhooks/made-up-{i}")).body(body.clone()),
                    1 => client
                        .post(format!("{base}/v1/webhooks/okta"))
                        .header("webhook-id", format!("msg_{i}"))
                        .header("webhook-timestamp", "1700000000")
                        .header("webhook-signature", "v1,AAAA")
                        .body(body.clone()),
                    2 => client.post(format!("{base}/v1/authorize")).bearer_auth("garbage").json(&json!({})),
                    3 => client
                        .post(format!("{base}/v1/authorize"))
                        .bearer_auth(format!("wrnt_{i:016x}_{}", "ab".repeat(32)))
                        .json(&json!({})),
                    _ => client.get(format!("{base}/v1/audit/events")),
                };
                let status = request.send().await.expect("send").status().as_u16();
                *statuses.entry((kind, status)).or_default() += 1;
            }
            statuses
        }));
    }
    let mut statuses = BTreeMap::<(usize, u16), usize>::new();
    for task in tasks {
        for (k, n) in task.await.unwrap() {
            *statuses.entry(k).or_default() += n;
        }
    }
    let per_kind = TOTAL / 5;
    let want = BTreeMap::from([
        ((0, 404), per_kind),
        ((1, 401), per_kind),
        ((2, 401), per_kind),
        ((3, 401), per_kind),
        ((4, 401), per_kind),
    ]);
    assert_eq!(statuses, want);

    // Stopping records what was counted since the last summary.
    server.restart();
    let after = server.audit_events("").await;
    let added = &after[before..];
    assert!(added.len() <= 4, "{} records for {TOTAL} refused requests: {added:?}", added.len());
    assert!(added.iter().all(|r| r["details"]["summary"] == true), "{added:?}");
    let webhooks = summaries(&server, "webhook.rejected", 2 * per_kind as u64).await;
    assert_eq!(
        webhooks,
        BTreeMap::from([
            (("webhook:*".to_owned(), "unknown_source".to_owned()), per_kind as u64),
            (("webhook:okta".to_owned(), "timestamp_too_old".to_owned()), per_kind as u64),
        ])
    );
    let keys = summaries(&server, "api_key.rejected", 2 * per_kind as u64).await;
    assert_eq!(
        keys,
        BTreeMap::from([
            (("api_key:*".to_owned(), "malformed_key".to_owned()), per_kind as u64),
            (("api_key:*".to_owned(), "unknown_key".to_owned()), per_kind as u64),
        ])
    );
    let r = server.get("/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
}
