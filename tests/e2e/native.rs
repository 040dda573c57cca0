//! The native decision API: `POST /v1/authorize` and `/v1/authorize/batch`,
//! against the policy pack.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, entity_ref, pack_entities};

fn request(principal: (&str, &str), action: &str, resource: (&str, &str)) -> Value {
    json!({
        "principal": {"type": principal.0, "id": principal.1},
        "action": action,
        "resource": {"type": resource.0, "id": resource.1},
    })
}

async fn authorize(server: &Server, body: &Value) -> Value {
    let r = server.post("/v1/authorize", body).await;
    assert_eq!(r.status, StatusCode::OK, "authorize {body} → {}", r.text);
    r.json
}

#[tokio::test]
async fn a_forbid_reports_its_reason_and_policy_id() {
    let server = Server::start();
    server.put_entities(&pack_entities("credentials")).await;
    // R16: a User never falls back to the service account.
    let answer = authorize(&server, &request(("User", "eddie"), "use_service_account", ("Connection", "c_wh"))).await;
    assert_eq!(answer["decision"], "deny", "{answer}");
    assert_eq!(answer["reasons"], json!(["no_service_account_fallback"]));
    assert_eq!(answer["policies"], json!(["R16.service_account.no_user_fallback"]));

    // R5's owner-token forbid: same request shape, the reason changes with the context.
    let mut body = request(("User", "eddie"), "use_owner_credentials", ("Project", "p_nb"));
    body["context"] = json!({"surface": "notebook", "owner_token_status": "expired"});
    let answer = authorize(&server, &body).await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["reasons"], json!(["owner_token_expired"]));
    assert_eq!(answer["policies"], json!(["R5.owner_credentials.owner_token_not_active"]));
    body["context"]["owner_token_status"] = json!("active");
    let answer = authorize(&server, &body).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["reasons"], json!([]));
    assert_eq!(answer["policies"], json!(["R5.owner_credentials.notebook"]));
}

#[tokio::test]
async fn nothing_permits_is_no_permit() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let answer = authorize(&server, &request(("User", "oscar"), "view_notebook", ("Project", "p_multi"))).await;
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["reasons"], json!(["no_permit"]));
    assert_eq!(answer["policies"], json!([]));
    let answer = authorize(&server, &request(("User", "vera"), "view_notebook", ("Project", "p_multi"))).await;
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["policies"], json!(["R1.view_notebook.member"]));
}

#[tokio::test]
async fn decision_ids_are_unique_and_the_digest_is_the_active_bundle() {
    let server = Server::start();
    let digest = server.digest().await;
    assert!(digest.starts_with("sha256:"), "{digest}");
    let body = request(("User", "oscar"), "view_notebook", ("Project", "p_multi"));
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let answer = authorize(&server, &body).await;
        assert_eq!(answer["policy_digest"], digest.as_str());
        let id = answer["decision_id"].as_str().expect("decision_id").to_owned();
        assert!(!id.is_empty());
        assert!(ids.insert(id), "decision ids repeat");
    }
    // The same id space covers AuthZEN explained answers.
    let explained = server
        .evaluation(&json!({
            "subject": {"type": "User", "id": "oscar"},
            "action": {"name": "view_notebook"},
            "resource": {"type": "Project", "id": "p_multi"},
            "options": {"explain": true}
        }))
        .await;
    assert_eq!(explained["context"]["policy_digest"], digest.as_str());
    assert!(ids.insert(explained["context"]["decision_id"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn request_carried_entities_are_seen_and_not_stored() {
    let server = Server::start();
    let user = |id: &str| {
        json!({"uid": {"type": "Analytics::User", "id": id},
               "attrs": {"email": format!("{id}@example.com"), "workspace_role": "editor",
                         "is_support": false, "warehouse_roles": []},
               "parents": []})
    };
    let project = json!({
        "uid": {"type": "Analytics::Project", "id": "p1"},
        "attrs": {"owner": entity_ref("Analytics::User", "olivia"), "editors": [], "viewers": [],
                  "credential_sharing": "disabled", "app_includes_owner_credentials": false,
                  "shared_with_support": false, "uses_oauth": true},
        "parents": []
    });
    let mut body = request(("User", "olivia"), "view_notebook", ("Project", "p1"));
    // Nothing stored: no permit.
    assert_eq!(authorize(&server, &body).await["decision"], "deny");
    body["entities"] = json!([user("olivia"), project]);
    let answer = authorize(&server, &body).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    assert_eq!(answer["policies"], json!(["R1.view_notebook.member"]));
    // They were only for that request.
    body.as_object_mut().unwrap().remove("entities");
    assert_eq!(authorize(&server, &body).await["decision"], "deny");
    assert_eq!(server.get("/v1/entities").await.json, json!([]));

    // Request entities win over stored ones for the request.
    server.put_entities(&pack_entities("notebook")).await;
    let mut takeover = request(("User", "erin"), "take_over_session", ("Project", "p_single"));
    assert_eq!(authorize(&server, &takeover).await["decision"], "allow");
    let mut stored_p_single = pack_entities("notebook")
        .into_iter()
        .find(|e| e["uid"]["id"] == "p_single")
        .expect("p_single in notebook.json");
    stored_p_single["attrs"]["credential_sharing"] = json!("notebook_only");
    takeover["entities"] = json!([stored_p_single]);
    assert_eq!(authorize(&server, &takeover).await["decision"], "deny");
    // The record says what the request carried, and what it overrode.
    let records = server.audit_events("kind=decision").await;
    let supplied = &records.last().unwrap()["details"]["supplied"];
    assert_eq!(supplied["overrides"], json!(["Analytics::Project::p_single"]), "{supplied}");
    assert_eq!(
        (&supplied["entity_count"], &supplied["entities"][0]["uid"]),
        (&json!(1), &json!("Analytics::Project::p_single"))
    );
    assert!(supplied["entities"][0]["sha256"].as_str().unwrap().starts_with("sha256:"), "{supplied}");
    // A caller-set `now` is recorded too.
    let mut at = request(("User", "erin"), "take_over_session", ("Project", "p_single"));
    at["context"] = json!({"now": "2030-01-01T00:00:00Z"});
    authorize(&server, &at).await;
    let records = server.audit_events("kind=decision").await;
    assert_eq!(records.last().unwrap()["details"]["supplied"]["now"], "2030-01-01T00:00:00Z");

    // An invalid request entity is a 400 naming it.
    let mut bad = request(("User", "olivia"), "view_notebook", ("Project", "p1"));
    bad["entities"] = json!([{"uid": {"type": "Analytics::User", "id": "x"}, "attrs": {"email": 5}, "parents": []}]);
    let r = server.post("/v1/authorize", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "invalid_entity");
    assert_eq!(r.json["error"]["field"], "entities");
}

#[tokio::test]
async fn batch_answers_each_request_against_one_bundle() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let digest = server.digest().await;
    let body = json!({"requests": [
        request(("User", "vera"), "view_notebook", ("Project", "p_multi")),
        request(("User", "oscar"), "view_notebook", ("Project", "p_multi")),
        request(("User", "vera"), "fly_to_the_moon", ("Project", "p_multi")),
        request(("User", "erin"), "take_over_session", ("Project", "p_single")),
    ]});
    let r = server.post("/v1/authorize/batch", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["policy_digest"], digest.as_str());
    let results = r.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["decision"], "allow");
    assert_eq!(results[1]["decision"], "deny");
    assert_eq!(results[1]["reasons"], json!(["no_permit"]));
    // A failing request is a deny with an error; the others are still answered.
    assert_eq!(results[2]["decision"], "deny");
    assert_eq!(results[2]["error"]["code"], "unknown_action");
    assert_eq!(results[2]["error"]["field"], "action");
    assert_eq!(results[3]["decision"], "allow");
    assert_eq!(results[3]["policies"], json!(["R3.take_over.single_editor"]));
    let ids: HashSet<&str> = [0, 1, 3].iter().map(|&i| results[i]["decision_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct decision ids");
}
