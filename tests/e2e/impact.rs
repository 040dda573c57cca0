//! Policy impact before a change goes live: `PUT /v1/policies?dry_run=true`
//! reports the flips and changes nothing, `max_new_permits` gates an
//! upload (409, nothing changed; an accepted one's record carries the
//! summary), and `warrant diff` says the same offline.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::policies::BLOCK_VERA;
use crate::server::{Server, bundle_files, pack_dir, pack_entities, warrant_bin};

/// Lets a project's viewers edit it: newly permits requests.
const VIEWERS_EDIT: &str = r#"@id("T.viewers_edit")
permit (
  principal is Analytics::User,
  action == Analytics::Action::"edit_notebook",
  resource is Analytics::Project
)
when { resource.viewers.contains(principal) };
"#;

fn upload(extra_name: &str, extra: &str) -> Value {
    let mut files = bundle_files(&pack_dir());
    files.insert(extra_name.to_owned(), json!(extra));
    json!({"files": files})
}

async fn updates(server: &Server) -> usize {
    server.audit_events("kind=policy.updated").await.len()
}

#[tokio::test]
async fn a_dry_run_reports_the_flips_and_changes_nothing() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let (digest, records) = (server.digest().await, updates(&server).await);
    let r = server.put("/v1/policies?dry_run=true", &upload("block.cedar", BLOCK_VERA)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["dry_run"], true);
    assert_eq!(r.json["changed"], true, "the digest it would have differs");
    let impact = &r.json["impact"];
    assert_eq!(impact["newly_permitted"], 0, "{impact}");
    let view = impact["actions"].as_array().unwrap().iter().find(|a| a["action"] == "view_notebook").unwrap();
    assert_eq!(view["compared"], "changed_policies");
    assert_eq!(view["changed_policies"], json!(["+T.block_vera"]));
    let flips = view["examples"].as_array().unwrap();
    assert!(!flips.is_empty(), "{view}");
    for flip in flips {
        assert_eq!(flip["principal"], "Analytics::User::\"vera\"", "{flip}");
        assert_eq!(flip["allowed"], false);
        assert_eq!(flip["by"], json!(["T.block_vera"]));
    }
    assert_eq!(view["newly_denied"], impact["newly_denied"]);
    // Each reported flip is what the live service answers today.
    for flip in flips {
        let project = flip["resource"].as_str().unwrap().trim_start_matches("Analytics::Project::").trim_matches('"');
        let request = json!({"subject": {"type": "User", "id": "vera"}, "action": {"name": "view_notebook"},
                             "resource": {"type": "Project", "id": project}});
        assert!(server.decide(&request).await, "vera may view {project} today");
    }
    assert_eq!(server.digest().await, digest, "a dry run activates nothing");
    assert_eq!(updates(&server).await, records, "a dry run records no policy.updated");

    // The decisions just logged, replayed: each of vera's views flips.
    let r = server.put("/v1/policies?dry_run=true&replay=1000", &upload("block.cedar", BLOCK_VERA)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let replay = &r.json["replay"];
    assert_eq!(replay["replayed"], flips.len(), "{replay}");
    assert_eq!(replay["newly_denied"], flips.len(), "{replay}");
    assert!(replay["examples"].as_array().unwrap().iter().all(|f| f["by"] == json!(["T.block_vera"])), "{replay}");
    let refused = server.put("/v1/policies?replay=10", &upload("block.cedar", BLOCK_VERA)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "replay goes with dry_run: {}", refused.text);
    assert_eq!(refused.json["error"]["field"], "replay");
    assert_eq!(server.digest().await, digest);
}

/// A dry run can replay only the decisions logged in a time window: those
/// before a boundary, those at or after it, and the window's parameters
/// refused with a 400 naming them when they are wrong.
#[tokio::test]
async fn a_dry_run_replays_only_the_decisions_logged_in_a_time_window() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let view = |project: &str| {
        json!({"subject": {"type": "User", "id": "vera"}, "action": {"name": "view_notebook"},
               "resource": {"type": "Project", "id": project}})
    };
    assert!(server.audit_events("kind=decision").await.is_empty(), "a fresh log");
    // A project vera may view today, which the change denies her.
    let r = server.put("/v1/policies?dry_run=true", &upload("block.cedar", BLOCK_VERA)).await;
    let flips = r.json["impact"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "view_notebook")
        .unwrap()["examples"]
        .clone();
    let project = flips[0]["resource"].as_str().unwrap().trim_start_matches("Analytics::Project::").trim_matches('"');
    // Three of her views, then (after a pause, so stamps differ) two more.
    for _ in 0..3 {
        assert!(server.decide(&view(project)).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for _ in 0..2 {
        assert!(server.decide(&view(project)).await);
    }
    let logged = server.audit_events("kind=decision").await;
    assert_eq!(logged.len(), 5);
    let boundary = logged[3]["ts"].as_str().unwrap().to_owned();
    assert_ne!(logged[2]["ts"], logged[3]["ts"]);
    let replayed = |query: String| {
        let server = &server;
        async move {
            let r = server.put(&format!("/v1/policies?dry_run=true&{query}"), &upload("block.cedar", BLOCK_VERA)).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
            (r.json["replay"]["replayed"].as_u64().unwrap(), r.json["replay"]["newly_denied"].as_u64().unwrap())
        }
    };
    assert_eq!(replayed(format!("replay_until={boundary}")).await, (3, 3));
    assert_eq!(replayed(format!("replay_since={boundary}")).await, (2, 2));
    assert_eq!(replayed(format!("replay_since={boundary}&replay=1")).await, (1, 1));
    assert_eq!(
        replayed(format!("replay_since={}&replay_until={boundary}", logged[0]["ts"].as_str().unwrap())).await,
        (3, 3)
    );
    for (query, field) in [
        (format!("replay_since={boundary}&replay_until={boundary}"), "replay_since"),
        ("replay_since=yesterday".to_owned(), "replay_since"),
        (format!("dry_run=false&replay_until={boundary}"), "replay_until"),
    ] {
        let path = if query.starts_with("dry_run") {
            format!("/v1/policies?{query}")
        } else {
            format!("/v1/policies?dry_run=true&{query}")
        };
        let r = server.put(&path, &upload("block.cedar", BLOCK_VERA)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.json["error"]["field"], field, "{query}: {}", r.text);
    }

    // `warrant diff` reads the same window from the database.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    crate::server::copy_dir(&pack_dir(), &new);
    std::fs::write(new.join("block.cedar"), BLOCK_VERA).unwrap();
    let diff = |extra: &[&str]| {
        let mut command = std::process::Command::new(warrant_bin());
        command.arg("diff").arg("--json").arg(pack_dir()).arg(&new).arg("--database-url").arg(server.database_url());
        command.args(extra).env_remove("WARRANT_DATABASE_URL").output().unwrap()
    };
    let since = diff(&["--replay-since", &boundary]);
    assert_eq!(since.status.code(), Some(0), "{}", String::from_utf8_lossy(&since.stderr));
    let report: Value = serde_json::from_slice(&since.stdout).unwrap();
    assert_eq!(report["replay"]["replayed"], 2, "{}", report["replay"]);
    let until = diff(&["--replay-until", &boundary, "--replay", "2"]);
    let report: Value = serde_json::from_slice(&until.stdout).unwrap();
    assert_eq!(report["replay"]["replayed"], 2, "the newest 2 before the boundary: {}", report["replay"]);
    let reversed = diff(&["--replay-since", &boundary, "--replay-until", &boundary]);
    assert_eq!(reversed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&reversed.stderr).contains("must be before"), "{reversed:?}");
    let garbled = diff(&["--replay-since", "yesterday"]);
    assert_eq!(garbled.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&garbled.stderr).contains("not an RFC 3339 time"), "{garbled:?}");
}

#[tokio::test]
async fn max_new_permits_refuses_a_widening_change_and_records_the_impact_of_an_accepted_one() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let (digest, records) = (server.digest().await, updates(&server).await);
    let preview = server.put("/v1/policies?dry_run=true", &upload("viewers.cedar", VIEWERS_EDIT)).await;
    let widened = preview.json["impact"]["newly_permitted"].as_u64().unwrap();
    assert!(widened > 0, "{}", preview.text);

    let refused = server.put("/v1/policies?max_new_permits=0", &upload("viewers.cedar", VIEWERS_EDIT)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "too_many_new_permits");
    assert_eq!(server.digest().await, digest);
    assert_eq!(updates(&server).await, records);

    let path = format!("/v1/policies?max_new_permits={widened}");
    let accepted = server.put(&path, &upload("viewers.cedar", VIEWERS_EDIT)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_ne!(server.digest().await, digest);
    let events = server.audit_events("kind=policy.updated").await;
    let last = events.last().unwrap();
    assert_eq!(last["details"]["impact"]["newly_permitted"], widened, "{last}");
    assert_eq!(last["details"]["impact"]["flipped_actions"], json!(["edit_notebook"]));
}

#[test]
fn warrant_diff_reports_the_same_offline_and_gates_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    crate::server::copy_dir(&pack_dir(), &new);
    std::fs::write(new.join("viewers.cedar"), VIEWERS_EDIT).unwrap();
    let entities = dir.path().join("entities.json");
    std::fs::write(&entities, serde_json::to_string(&pack_entities("notebook")).unwrap()).unwrap();
    let diff = |extra: &[&str]| {
        let mut command = std::process::Command::new(warrant_bin());
        command.arg("diff").arg(pack_dir()).arg(&new).arg("--entities").arg(&entities).args(extra);
        command.env_remove("WARRANT_DATABASE_URL").output().unwrap()
    };
    let text = diff(&[]);
    assert_eq!(text.status.code(), Some(0), "{}", String::from_utf8_lossy(&text.stderr));
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("may now edit_notebook on Analytics::Project::"), "{out}");
    assert!(out.contains("permitted by T.viewers_edit"), "{out}");
    let json = diff(&["--json"]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let permitted = report["newly_permitted"].as_u64().unwrap();
    assert!(permitted > 0);
    assert!(out.contains(&format!("{permitted} newly permitted, 0 newly denied")), "{out}");
    let gated = diff(&["--max-new-permits", &(permitted - 1).to_string()]);
    assert_eq!(gated.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gated.stderr).contains("--max-new-permits"));
    assert_eq!(diff(&["--max-new-permits", &permitted.to_string()]).status.code(), Some(0));
    // A bundle that does not load cannot be compared: exit 2, named.
    std::fs::write(new.join("broken.cedar"), "permit (principal, action, resource) when { ;").unwrap();
    let broken = diff(&[]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("does not load"));
}

/// Edits from a published app are refused: a forbid on a context key only
/// callers send, which the store-wide comparison cannot cover.
const NO_APP_EDITS: &str = r#"@id("T.no_app_edits")
forbid (principal, action == Analytics::Action::"edit_notebook", resource)
when { context has surface && context.surface == "app" };
"#;

/// The decisions the replay test logs: every user × project × action ×
/// surface of the notebook entities, cycled to `count`.
fn logged_requests(count: usize) -> Vec<Value> {
    let mut combos = Vec::new();
    for user in ["eddie", "erin", "olivia", "oscar", "vera"] {
        for project in ["p_multi", "p_nb_app", "p_single", "p_single_idle"] {
            for action in ["view_notebook", "edit_notebook"] {
                for surface in [None, Some("notebook"), Some("app")] {
                    let mut item = json!({"subject": {"type": "User", "id": user}, "action": {"name": action},
                                          "resource": {"type": "Project", "id": project}});
                    if let Some(surface) = surface {
                        item["context"] = json!({"surface": surface});
                    }
                    combos.push(item);
                }
            }
        }
    }
    combos.iter().cycle().take(count).cloned().collect()
}

async fn ask_all(server: &Server, requests: &[Value]) -> Vec<bool> {
    let mut answers = Vec::with_capacity(requests.len());
    for batch in requests.chunks(1000) {
        let answer = server.evaluations(&json!({"evaluations": batch})).await;
        answers.extend(answer["evaluations"].as_array().unwrap().iter().map(|e| e["decision"] == true));
    }
    answers
}

/// Issue 25's criterion: replaying 100,000 logged decisions against a
/// changed bundle reports the same flips as re-asking each request over
/// HTTP once the bundle is in force.
#[tokio::test]
async fn replaying_100000_logged_decisions_reports_the_flips_re_asking_over_http_finds() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let requests = logged_requests(100_000);
    let logged = ask_all(&server, &requests).await;

    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    crate::server::copy_dir(&pack_dir(), &new);
    std::fs::write(new.join("viewers.cedar"), VIEWERS_EDIT).unwrap();
    std::fs::write(new.join("surface.cedar"), NO_APP_EDITS).unwrap();
    let out = std::process::Command::new(warrant_bin())
        .args(["diff", "--json", "--replay", "100000", "--examples", "100000", "--database-url", server.database_url()])
        .arg(pack_dir())
        .arg(&new)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let replay = &report["replay"];
    assert_eq!(replay["replayed"], 100_000, "{}", replay["not_replayable_examples"]);
    assert_eq!(replay["not_replayable"], 0);

    // The bundle goes live, and every request is asked again.
    let mut files = bundle_files(&pack_dir());
    files.insert("viewers.cedar".into(), json!(VIEWERS_EDIT));
    files.insert("surface.cedar".into(), json!(NO_APP_EDITS));
    assert_eq!(server.put("/v1/policies", &json!({"files": files})).await.status, StatusCode::OK);
    let now = ask_all(&server, &requests).await;
    let mut over_http: std::collections::BTreeMap<(String, String, String, bool), usize> = Default::default();
    for ((request, before), after) in requests.iter().zip(&logged).zip(&now) {
        if before != after {
            let key = (
                format!("Analytics::User::{:?}", request["subject"]["id"].as_str().unwrap()),
                request["action"]["name"].as_str().unwrap().to_owned(),
                format!("Analytics::Project::{:?}", request["resource"]["id"].as_str().unwrap()),
                *after,
            );
            *over_http.entry(key).or_default() += 1;
        }
    }
    let mut replayed: std::collections::BTreeMap<(String, String, String, bool), usize> = Default::default();
    for flip in replay["examples"].as_array().unwrap() {
        let name = |v: &Value| {
            v.as_str().unwrap().replacen("User::", "Analytics::User::", 1).replacen(
                "Project::",
                "Analytics::Project::",
                1,
            )
        };
        let key = (
            name(&flip["principal"]),
            flip["action"].as_str().unwrap().to_owned(),
            name(&flip["resource"]),
            flip["allowed"] == true,
        );
        *replayed.entry(key).or_default() += 1;
    }
    let flips: usize = over_http.values().sum();
    assert!(flips > 1000, "the change must flip many logged decisions, in both directions: {over_http:?}");
    assert!(over_http.keys().any(|k| k.3) && over_http.keys().any(|k| !k.3));
    assert_eq!(replayed, over_http);
    assert_eq!(replay["newly_permitted"].as_u64().unwrap() + replay["newly_denied"].as_u64().unwrap(), flips as u64);
    assert_eq!(replay["drifted"], 0, "nothing changed but the bundle");
}
