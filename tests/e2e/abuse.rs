//! What an outsider can make the service keep (issue 19): unauthenticated
//! traffic is counted and summarised, never recorded one per request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::server::{Server, eval};

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
    // This test wants the default (a minute), not the webhook tests' 200 ms,
    // and every request answered as itself, not throttled (see below).
    server.extra_args.retain(|a| a != "--rejection-summary-interval-ms" && a != "200");
    server.extra_args.extend(["--refusals-per-address".into(), "0".into()]);
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

/// Sockets for the transport tests: `idle` connect and send nothing; `slow`
/// send part of a header and then a byte a second.
async fn open_sockets(addr: &str, idle: usize, slow: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let mut idles = Vec::with_capacity(idle);
    for _ in 0..idle {
        idles.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut slows = Vec::with_capacity(slow);
    for _ in 0..slow {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
        slows.push(s);
    }
    (idles, slows)
}

/// Whether the server closed `socket` (EOF or reset) before `deadline`.
async fn closed_by(socket: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 or similar, then the close
            Err(_) => return false,
        }
    }
}

/// Times `/healthz` and a decision while the sockets are open.
async fn answer_times(server: &Server) -> (Duration, Duration) {
    let started = Instant::now();
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
    let health = started.elapsed();
    let started = Instant::now();
    let decision = eval(("User", "olivia"), "view_notebook", ("Project", "p_single"));
    assert!(!server.decide(&decision).await);
    (health, started.elapsed())
}

/// 2,000 idle and 500 slow-header sockets (issue 19, row 2): health checks
/// and decisions still answer at once, and the server closes every one of
/// those sockets once the header timeout (here 2 s) has passed; dribbling
/// a byte a second does not extend it.
#[tokio::test]
async fn idle_and_slow_sockets_are_closed_and_lock_no_one_out() {
    let server = Server::start_with_args(&["--header-timeout-secs", "2"]);
    let addr = server.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let (mut idles, mut slows) = open_sockets(&addr, 2000, 500).await;
    let opened = Instant::now();
    let (health, decision) = answer_times(&server).await;
    eprintln!("with 2,000 idle and 500 slow sockets open: /healthz {health:?}, a decision {decision:?}");
    assert!(health < Duration::from_secs(1) && decision < Duration::from_secs(1), "{health:?} {decision:?}");
    let dribble = async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for s in &mut slows {
                let _ = s.write_all(b"a").await;
            }
        }
    };
    dribble.await;
    let deadline = opened + Duration::from_secs(2 + 5);
    let mut open = 0;
    for s in idles.iter_mut().chain(slows.iter_mut()) {
        if !closed_by(s, deadline).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "sockets still open {:?} after the 2 s header timeout", opened.elapsed());
    let (health, decision) = answer_times(&server).await;
    assert!(health < Duration::from_secs(1) && decision < Duration::from_secs(1), "{health:?} {decision:?}");
}

/// At the connection cap, the connection idle the longest makes room: 200
/// idle sockets against a cap of 50 lock out neither a health check nor a
/// decision, long before any timeout.
#[tokio::test]
async fn at_the_connection_cap_idle_connections_make_room() {
    let server = Server::start_with_args(&["--max-connections", "50"]);
    let addr = server.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let (mut idles, _) = open_sockets(&addr, 200, 0).await;
    let (health, decision) = answer_times(&server).await;
    assert!(health < Duration::from_secs(1) && decision < Duration::from_secs(1), "{health:?} {decision:?}");
    // The oldest idle sockets were closed to make room (well before the
    // 30 s header timeout).
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut closed = 0;
    for s in idles.iter_mut().take(100) {
        if closed_by(s, deadline).await {
            closed += 1;
        }
    }
    assert!(closed >= 100, "only {closed} of the 100 oldest idle sockets were closed");
}

/// An address that keeps presenting made-up API keys is answered 429 with
/// `Retry-After` once past its refusal budget (50 a second, bursts of 100),
/// for every request until the budget refills (issue 19, row 2); requests
/// with no key at all cost nothing and are not counted.
#[tokio::test]
async fn an_address_guessing_keys_is_throttled_and_recovers() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let url = server.url("/v1/authorize");
    for _ in 0..300 {
        let r = client.post(&url).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no key: never throttled");
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut retry_after = None;
    for i in 0..300 {
        let r = client
            .post(&url)
            .bearer_auth(format!("wrnt_{i:016x}_{}", "cd".repeat(32)))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        *statuses.entry(r.status().as_u16()).or_default() += 1;
    }
    assert!(statuses[&401] >= 100 && statuses[&401] < 200, "{statuses:?}");
    assert!(statuses[&429] >= 100, "{statuses:?}");
    let wait = retry_after.expect("a Retry-After");
    assert!((1..=5).contains(&wait), "{wait}");
    // While blocked, the address is refused whatever it sends...
    let eval = crate::server::eval(("User", "olivia"), "view_notebook", ("Project", "p_single"));
    assert_eq!(server.post("/access/v1/evaluation", &eval).await.status, StatusCode::TOO_MANY_REQUESTS);
    // ...and once the budget refills, it is served again.
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    assert_eq!(server.post("/access/v1/evaluation", &eval).await.status, StatusCode::OK);
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"warrant_refusals_total{kind="rate_limited",reason="per_address"}"#), "{metrics}");
}

/// `--rate-limit-per-key` bounds each API key on its own.
#[tokio::test]
async fn a_per_key_limit_applies_to_that_key_only() {
    let server = Server::start_with_args(&["--rate-limit-per-key", "5"]);
    let eval = crate::server::eval(("User", "olivia"), "view_notebook", ("Project", "p_single"));
    let mut statuses = BTreeMap::<u16, usize>::new();
    for _ in 0..40 {
        *statuses.entry(server.post("/access/v1/evaluation", &eval).await.status.as_u16()).or_default() += 1;
    }
    assert!(statuses.get(&429).is_some_and(|n| *n >= 10), "{statuses:?}");
    assert!(statuses[&200] >= 10, "{statuses:?}");
}
