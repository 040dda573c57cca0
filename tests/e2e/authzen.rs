//! AuthZEN Authorization API 1.0 over HTTP, with the spec's own examples
//! against the `fixtures/authzen-spec` bundle (types `user`, `account`,
//! `document`, `todo` in namespace `Acme`; documents 1 and 3 public, 2 not;
//! `subject-search.md` private; `resource-search.md` owned by bob).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Server, entity_ref, fixture_dir};

fn spec_server() -> Server {
    Server::start_with(&fixture_dir("authzen-spec"))
}

fn alice() -> Value {
    json!({"type": "user", "id": "alice@acmecorp.com"})
}

fn document(id: &str) -> Value {
    json!({"type": "document", "id": id})
}

fn decisions(answer: &Value) -> Vec<bool> {
    answer["evaluations"]
        .as_array()
        .unwrap_or_else(|| panic!("no `evaluations` array in {answer}"))
        .iter()
        .map(|e| e["decision"].as_bool().unwrap_or_else(|| panic!("no boolean decision in {e}")))
        .collect()
}

#[tokio::test]
async fn spec_evaluation_example_is_permitted_and_answer_is_exactly_the_decision() {
    let server = spec_server();
    // §"Access Evaluation API Request", example (non-normative), verbatim.
    let request = json!({
        "subject": {"type": "user", "id": "alice@acmecorp.com"},
        "resource": {"type": "account", "id": "123"},
        "action": {"name": "can_read", "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"}
    });
    assert_eq!(server.evaluation(&request).await, json!({"decision": true}));
    // The same request for someone else's account is a deny: still a 200.
    let mut other = request.clone();
    other["resource"]["id"] = json!("456");
    assert_eq!(server.evaluation(&other).await, json!({"decision": false}));
}

#[tokio::test]
async fn spec_https_binding_example_echoes_x_request_id() {
    let server = spec_server();
    let id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716";
    let body = json!({
        "subject": {"type": "user", "id": "alice@acmecorp.com"},
        "resource": {"type": "todo", "id": "1"},
        "action": {"name": "can_read"},
        "context": {"time": "1985-10-26T01:22-07:00"}
    });
    let response = server
        .client
        .post(server.url("/access/v1/evaluation"))
        .header("X-Request-ID", id)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], id);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"decision": true}));
}

#[tokio::test]
async fn x_request_id_is_generated_when_absent() {
    let server = spec_server();
    let body = json!({"subject": alice(), "action": {"name": "can_read"}, "resource": document("1")});
    let first = server.post("/access/v1/evaluation", &body).await;
    let second = server.post("/access/v1/evaluation", &body).await;
    let id = |r: &crate::server::Reply| r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id(&first).len(), 36, "a UUID: {}", id(&first));
    assert_ne!(id(&first), id(&second), "each request gets its own id");
    // Errors carry one too.
    let bad = server.raw(Method::POST, "/access/v1/evaluation", Some("application/json"), b"{".to_vec()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(id(&bad).len(), 36);
}

#[tokio::test]
async fn spec_evaluations_examples_with_and_without_defaults() {
    let server = spec_server();
    let time = json!({"time": "2024-05-31T15:22-07:00"});
    let item = |id: &str| json!({"subject": alice(), "action": {"name": "can_read"}, "resource": document(id), "context": time});
    // Three requests, no default values.
    let no_defaults =
        json!({"evaluations": [item("boxcarring.md"), item("subject-search.md"), item("resource-search.md")]});
    let expected = json!({"evaluations": [{"decision": true}, {"decision": false}, {"decision": true}]});
    assert_eq!(server.evaluations(&no_defaults).await, expected);

    // Default subject and context.
    let defaults = json!({
        "subject": alice(),
        "context": time,
        "evaluations": [
            {"action": {"name": "can_read"}, "resource": document("boxcarring.md")},
            {"action": {"name": "can_read"}, "resource": document("subject-search.md")},
            {"action": {"name": "can_read"}, "resource": document("resource-search.md")}
        ]
    });
    assert_eq!(server.evaluations(&defaults).await, expected);

    // Default action, overridden by the third request (`can_edit` on bob's document).
    let overridden = json!({
        "subject": alice(),
        "context": time,
        "action": {"name": "can_read"},
        "evaluations": [
            {"resource": document("boxcarring.md")},
            {"resource": document("subject-search.md")},
            {"action": {"name": "can_edit"}, "resource": document("resource-search.md")}
        ]
    });
    assert_eq!(
        server.evaluations(&overridden).await,
        json!({"evaluations": [{"decision": true}, {"decision": false}, {"decision": false}]})
    );
}

#[tokio::test]
async fn spec_evaluations_semantic_examples() {
    let server = spec_server();
    let request = |semantic: &str| {
        json!({
            "subject": {"type": "user", "id": "alice@example.com"},
            "action": {"name": "read"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [{"resource": document("1")}, {"resource": document("2")}, {"resource": document("3")}]
        })
    };
    assert_eq!(decisions(&server.evaluations(&request("execute_all")).await), [true, false, true]);
    // Stops after the first deny: the third is not answered.
    assert_eq!(decisions(&server.evaluations(&request("deny_on_first_deny")).await), [true, false]);
    // Stops after the first permit.
    assert_eq!(decisions(&server.evaluations(&request("permit_on_first_permit")).await), [true]);

    // Without `options`, execute_all.
    let mut default = request("execute_all");
    default.as_object_mut().unwrap().remove("options");
    assert_eq!(server.evaluations(&default).await["evaluations"].as_array().unwrap().len(), 3);

    // permit_on_first_permit goes past leading denies, then stops.
    let denies_first = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "read"},
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [{"resource": document("2")}, {"resource": document("3")}, {"resource": document("1")}]
    });
    assert_eq!(decisions(&server.evaluations(&denies_first).await), [false, true]);
    // deny_on_first_deny with no deny answers everything.
    let all_permitted = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "read"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"resource": document("1")}, {"resource": document("3")}]
    });
    assert_eq!(decisions(&server.evaluations(&all_permitted).await), [true, true]);
}

#[tokio::test]
async fn batch_items_are_exactly_the_decision_unless_explain() {
    let server = spec_server();
    let mut body = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "read"},
        "evaluations": [{"resource": document("1")}, {"resource": document("2")}]
    });
    // Exact JSON: interop harnesses compare it whole.
    assert_eq!(server.evaluations(&body).await, json!({"evaluations": [{"decision": true}, {"decision": false}]}));

    body["options"] = json!({"explain": true});
    let explained = server.evaluations(&body).await;
    let items = explained["evaluations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["decision"], true);
    assert_eq!(items[0]["context"]["policies"], json!(["documents.public_read"]));
    assert_eq!(items[1]["decision"], false);
    assert_eq!(items[1]["context"]["reasons"], json!(["no_permit"]));
    for item in items {
        assert!(item["context"]["decision_id"].as_str().is_some_and(|s| !s.is_empty()), "{item}");
        assert!(item["context"]["policy_digest"].as_str().is_some_and(|s| s.starts_with("sha256:")), "{item}");
    }
    assert_ne!(items[0]["context"]["decision_id"], items[1]["context"]["decision_id"]);
}

#[tokio::test]
async fn per_item_object_replaces_the_default_whole() {
    let server = spec_server();
    // Default resource: document 2 *with* `public: true` (so readable). An item
    // naming document 2 without properties must not inherit them.
    let body = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "read"},
        "resource": {"type": "document", "id": "2", "properties": {"public": true}},
        "evaluations": [
            {"resource": {"type": "document", "id": "2"}},
            {"action": {"name": "can_read"}}
        ]
    });
    assert_eq!(server.evaluations(&body).await, json!({"evaluations": [{"decision": false}, {"decision": true}]}));

    // Same for the subject: the default is suspended, the item's subject is not.
    let body = json!({
        "subject": {"type": "user", "id": "alice@example.com", "properties": {"suspended": true}},
        "action": {"name": "read"},
        "resource": document("1"),
        "evaluations": [{"subject": {"type": "user", "id": "alice@example.com"}}, {}]
    });
    assert_eq!(server.evaluations(&body).await, json!({"evaluations": [{"decision": true}, {"decision": false}]}));
}

#[tokio::test]
async fn empty_or_missing_evaluations_is_one_evaluation() {
    let server = spec_server();
    let permitted =
        json!({"subject": alice(), "action": {"name": "can_read"}, "resource": {"type": "account", "id": "123"}});
    let denied =
        json!({"subject": alice(), "action": {"name": "can_read"}, "resource": {"type": "account", "id": "456"}});
    for (body, decision) in [(permitted, true), (denied, false)] {
        assert_eq!(server.evaluations(&body).await, json!({"decision": decision}), "missing: {body}");
        let mut empty = body.clone();
        empty["evaluations"] = json!([]);
        assert_eq!(server.evaluations(&empty).await, json!({"decision": decision}), "empty: {empty}");
    }
}

#[tokio::test]
async fn a_failing_item_is_a_deny_with_an_error_and_the_others_are_answered() {
    let server = spec_server();
    let mut body = json!({
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "read"},
        "evaluations": [
            {"resource": document("1")},
            {"resource": {"type": "spaceship", "id": "x"}},
            {"action": {"name": "launch"}, "resource": document("1")},
            {},
            {"resource": document("3")}
        ]
    });
    let answer = server.evaluations(&body).await;
    let items = answer["evaluations"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{answer}");
    assert_eq!(items[0], json!({"decision": true}));
    assert_eq!(items[4], json!({"decision": true}));
    let failing = [
        (&items[1], "unknown_entity_type", "spaceship"),
        (&items[2], "unknown_action", "launch"),
        (&items[3], "invalid_body", "resource"),
    ];
    for (item, code, needle) in failing {
        assert_eq!(item["decision"], false, "{item}");
        let error = &item["context"]["error"];
        assert_eq!(error["code"], code, "{item}");
        assert!(error["message"].as_str().unwrap().contains(needle), "{item}");
    }
    assert_eq!(items[3]["context"]["error"]["field"], "evaluations[3].resource");

    // deny_on_first_deny: an error is a deny and stops the batch.
    body["options"] = json!({"evaluations_semantic": "deny_on_first_deny"});
    let answer = server.evaluations(&body).await;
    assert_eq!(decisions(&answer), [true, false]);
    assert_eq!(answer["evaluations"][1]["context"]["error"]["code"], "unknown_entity_type");
}

#[tokio::test]
async fn well_known_configuration_lists_working_endpoints() {
    let server = spec_server();
    let r = server.get("/.well-known/authzen-configuration").await;
    assert_eq!(r.status, StatusCode::OK);
    let config = r.json.as_object().unwrap();
    assert_eq!(config["policy_decision_point"], server.base.as_str());
    assert_eq!(config["access_evaluation_endpoint"], server.url("/access/v1/evaluation").as_str());
    assert_eq!(config["access_evaluations_endpoint"], server.url("/access/v1/evaluations").as_str());
    // Every advertised endpoint answers a valid request (the spec: endpoints
    // not offered must be omitted, so nothing listed may be a 404).
    let request =
        json!({"subject": alice(), "action": {"name": "can_read"}, "resource": {"type": "account", "id": "123"}});
    for (key, url) in config.iter().filter(|(k, _)| k.ends_with("_endpoint")) {
        let response = server.client.post(url.as_str().unwrap()).json(&request).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{key} = {url}");
    }
}

#[tokio::test]
async fn qualified_and_unqualified_names_both_resolve() {
    let server = spec_server();
    let spellings = [
        ("user", "can_read", "account"),
        ("Acme::user", "can_read", "Acme::account"),
        ("user", "Acme::Action::\"can_read\"", "Acme::account"),
        ("Acme::user", "Acme::Action::\"can_read\"", "account"),
    ];
    for (subject, action, resource) in spellings {
        let body = json!({
            "subject": {"type": subject, "id": "alice@acmecorp.com"},
            "action": {"name": action},
            "resource": {"type": resource, "id": "123"}
        });
        assert!(server.decide(&body).await, "{body}");
        // And the deny is still a deny (the names do not bypass policies).
        let mut other = body.clone();
        other["resource"]["id"] = json!("456");
        assert!(!server.decide(&other).await, "{other}");
    }
    // A type in another namespace does not resolve.
    let wrong = json!({
        "subject": {"type": "Other::user", "id": "alice@acmecorp.com"},
        "action": {"name": "can_read"},
        "resource": {"type": "account", "id": "123"}
    });
    let r = server.post("/access/v1/evaluation", &wrong).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "unknown_entity_type");
    assert_eq!(r.json["error"]["field"], "subject.type");
}

#[tokio::test]
async fn properties_merge_over_the_stored_entity() {
    let server = spec_server();
    // A stored document owned by bob, not public.
    server
        .put_entities(&[json!({
            "uid": {"type": "Acme::document", "id": "draft.md"},
            "attrs": {"public": false, "owner": entity_ref("Acme::user", "bob@acmecorp.com")},
            "parents": []
        })])
        .await;
    let ask = |subject: &str, action: &str, properties: Option<Value>| {
        let mut resource = document("draft.md");
        if let Some(p) = properties {
            resource["properties"] = p;
        }
        json!({"subject": {"type": "user", "id": subject}, "action": {"name": action}, "resource": resource})
    };
    assert!(!server.decide(&ask("alice@acmecorp.com", "can_read", None)).await);
    // Overriding one attribute changes the decision...
    assert!(server.decide(&ask("alice@acmecorp.com", "can_read", Some(json!({"public": true})))).await);
    // ...and keeps the others: the owner is still bob (merged, not replaced).
    assert!(!server.decide(&ask("alice@acmecorp.com", "can_edit", Some(json!({"public": true})))).await);
    assert!(server.decide(&ask("bob@acmecorp.com", "can_edit", Some(json!({"public": true})))).await);
    let new_owner = json!({"owner": entity_ref("Acme::user", "alice@acmecorp.com")});
    assert!(server.decide(&ask("alice@acmecorp.com", "can_edit", Some(new_owner))).await);
    // Properties are per request: the stored entity is unchanged.
    assert!(!server.decide(&ask("alice@acmecorp.com", "can_read", None)).await);

    // Subject properties merge too (suspended → the forbid applies).
    let suspended = json!({
        "subject": {"type": "user", "id": "alice@acmecorp.com", "properties": {"suspended": true}},
        "action": {"name": "can_read"},
        "resource": {"type": "account", "id": "123"},
        "options": {"explain": true}
    });
    let answer = server.evaluation(&suspended).await;
    assert_eq!(answer["decision"], false);
    assert_eq!(answer["context"]["reasons"], json!(["subject_suspended"]));
    assert_eq!(answer["context"]["policies"], json!(["users.suspended"]));
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_context_is_optional() {
    let server = spec_server();
    let base =
        json!({"subject": alice(), "action": {"name": "can_read"}, "resource": {"type": "account", "id": "123"}});
    let mut variants = vec![base.clone()];
    for context in [json!(null), json!({})] {
        let mut body = base.clone();
        body["context"] = context;
        variants.push(body);
    }
    let mut extra = base.clone();
    extra["vendor_extension"] = json!({"x": 1});
    extra["subject"]["identity"] = json!("CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs");
    extra["action"]["properties"] = json!({"method": "GET"});
    variants.push(extra);
    for body in variants {
        assert_eq!(server.evaluation(&body).await, json!({"decision": true}), "{body}");
    }
}

#[tokio::test]
async fn per_item_context_replaces_the_default_context() {
    // The pack's owner-credential rule reads two context keys: the default
    // context has both; an item's context with only one must not inherit the other.
    let server = Server::start();
    server.put_entities(&crate::server::pack_entities("credentials")).await;
    let body = json!({
        "subject": {"type": "User", "id": "eddie"},
        "action": {"name": "use_owner_credentials"},
        "resource": {"type": "Project", "id": "p_nb"},
        "context": {"surface": "notebook", "owner_token_status": "active"},
        "options": {"explain": true},
        "evaluations": [{}, {"context": {"surface": "notebook"}}]
    });
    let answer = server.evaluations(&body).await;
    assert_eq!(answer["evaluations"][0]["decision"], true, "{answer}");
    assert_eq!(answer["evaluations"][1]["decision"], false, "{answer}");
    assert_eq!(answer["evaluations"][1]["context"]["reasons"], json!(["owner_token_expired"]));
}

/// The metadata document, asked for with a forged `Host` header.
async fn metadata_asked_as(server: &Server, host: &str) -> Value {
    let r = reqwest::Client::new()
        .get(server.url("/.well-known/authzen-configuration"))
        .header("host", host)
        .send()
        .await
        .expect("request");
    r.json().await.expect("json")
}

#[tokio::test]
async fn a_pinned_public_url_names_the_endpoints_whatever_the_host_header() {
    let server = crate::server::Server::start_with_args(&["--public-url", "https://pdp.example.com/"]);
    let doc = metadata_asked_as(&server, "attacker.invalid").await;
    assert_eq!(doc["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(doc["access_evaluation_endpoint"], "https://pdp.example.com/access/v1/evaluation");
    assert!(!doc.to_string().contains("attacker.invalid"));
}

/// Without `--public-url` the metadata names the listening address, never
/// the request's `Host` header (issue 19, row 11): a forged Host cannot send
/// clients elsewhere through a cache.
#[tokio::test]
async fn metadata_names_the_listening_address_whatever_the_host_header() {
    let server = crate::server::Server::start();
    let doc = metadata_asked_as(&server, "attacker.invalid").await;
    assert!(!doc.to_string().contains("attacker.invalid"), "{doc}");
    let base = server.url("");
    assert_eq!(doc["policy_decision_point"], base.trim_end_matches('/'));
    assert_eq!(doc["access_evaluation_endpoint"], format!("{}/access/v1/evaluation", base.trim_end_matches('/')));
}

/// What a request supplies beyond ids is on the decision's record (issue
/// 19, row 8): AuthZEN `properties` (redacted like every record's details), the
/// stored entities they override, and a caller-set `now`.
/// `--request-overrides deny` refuses a request that overrides a stored
/// entity instead, and one that sets `now`.
#[tokio::test]
async fn supplied_properties_and_overrides_are_recorded_or_refused() {
    let stored_draft = json!({
        "uid": {"type": "Acme::document", "id": "draft.md"},
        "attrs": {"public": false, "owner": entity_ref("Acme::user", "bob@acmecorp.com")},
        "parents": []
    });
    let ask = |id: &str, properties: Value| {
        json!({"subject": alice(), "action": {"name": "can_read"},
               "resource": {"type": "document", "id": id, "properties": properties}})
    };
    let made_public = ask("draft.md", json!({"public": true}));

    let server = spec_server();
    server.put_entities(std::slice::from_ref(&stored_draft)).await;
    assert!(server.decide(&made_public).await, "the override decides, by default");
    let records = server.audit_events("kind=decision").await;
    let supplied = &records.last().unwrap()["details"]["supplied"];
    assert_eq!(supplied["overrides"], json!(["Acme::document::draft.md"]), "{supplied}");
    assert_eq!(supplied["properties"]["resource"]["public"], true, "{supplied}");
    // Properties for an entity that is not stored override nothing.
    assert!(!server.decide(&ask("other.md", json!({"public": false}))).await);
    let records = server.audit_events("kind=decision").await;
    let supplied = &records.last().unwrap()["details"]["supplied"];
    assert!(supplied.get("overrides").is_none(), "{supplied}");
    // Without properties, nothing is supplied.
    let plain = json!({"subject": alice(), "action": {"name": "can_read"}, "resource": document("draft.md")});
    assert!(!server.decide(&plain).await);
    let records = server.audit_events("kind=decision").await;
    assert!(records.last().unwrap()["details"].get("supplied").is_none());

    let strict = Server::start_with_args_in(&fixture_dir("authzen-spec"), &["--request-overrides", "deny"]);
    strict.put_entities(std::slice::from_ref(&stored_draft)).await;
    let r = strict.post("/access/v1/evaluation", &made_public).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "override_refused", "{}", r.text);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("Acme::document::draft.md"), "{}", r.text);
    assert!(!strict.decide(&ask("other.md", json!({"public": false}))).await, "no stored entity, no override");
    assert!(!strict.decide(&plain).await);
}
