//! The OpenID AuthZEN certification scenario
//! (`certification/authorization-api-1_0-scenario.md` in openid/authzen),
//! every level — Basic, Batch and Search, Core and Properties, and
//! Discovery — with the transport, header, error and idempotency rules that
//! apply to all, over HTTPS with a CA made for the test, against the
//! scenario's fixture (`tests/fixtures/authzen-certification`). Section
//! numbers (§2.2.1) are the scenario's test ids.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::server::{Reply, Server, fixture_dir};
use crate::tls::TestCa;

fn start(args: &[&str]) -> (Server, TestCa) {
    let ca = TestCa::new("AuthZEN certification test CA");
    let server = Server::start_tls(&fixture_dir("authzen-certification"), &ca, args);
    assert!(server.url("").starts_with("https://127.0.0.1:"), "{}", server.url(""));
    (server, ca)
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

fn record(id: &str) -> Value {
    json!({"type": "record", "id": id})
}

fn action(name: &str) -> Value {
    json!({"name": name})
}

fn request(subject: Value, action: Value, resource: Value) -> Value {
    json!({"subject": subject, "action": action, "resource": resource})
}

/// A 200 JSON answer (§5.2), its body.
fn ok(reply: &Reply, what: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text);
    let content_type = reply.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("application/json"), "{what}: content type {content_type}");
    reply.json.clone()
}

async fn evaluation(server: &Server, body: &Value) -> Value {
    ok(&server.post("/access/v1/evaluation", body).await, &body.to_string())
}

async fn evaluations(server: &Server, body: &Value) -> Value {
    ok(&server.post("/access/v1/evaluations", body).await, &body.to_string())
}

async fn bad_request(server: &Server, path: &str, body: &Value) {
    let reply = server.post(path, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", reply.text);
    assert!(reply.json["error"]["code"].is_string(), "{path} {body}: {}", reply.text);
}

/// The ids (or names) in a search answer, after checking its shape.
fn listed(answer: &Value, key: &str, ty: Option<&str>) -> Vec<String> {
    let results = answer["results"].as_array().unwrap_or_else(|| panic!("no results array: {answer}"));
    results
        .iter()
        .map(|r| {
            if let Some(ty) = ty {
                assert_eq!(r["type"], ty, "{answer}");
            }
            r[key].as_str().unwrap_or_else(|| panic!("no {key}: {answer}")).to_owned()
        })
        .collect()
}

#[tokio::test]
async fn basic_core_and_properties() {
    let (server, _ca) = start(&[]);
    let decision = |v: &Value| v["decision"].as_bool().unwrap_or_else(|| panic!("no boolean decision: {v}"));

    // §2.2.1, §2.2.2: the answer is exactly the decision.
    assert_eq!(
        evaluation(&server, &request(user("alice"), action("read"), record("record-1"))).await,
        json!({"decision": true})
    );
    assert_eq!(
        evaluation(&server, &request(user("bob"), action("write"), record("record-1"))).await,
        json!({"decision": false})
    );
    // §2.2.3: context the schema does not declare changes nothing.
    let mut with_context = request(user("alice"), action("read"), record("record-1"));
    with_context["context"] = json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"});
    assert_eq!(evaluation(&server, &with_context).await, json!({"decision": true}));
    // §2.2.4 (rule 5): the archived status sent as a property denies alice.
    let archived = json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
    assert!(!decision(&evaluation(&server, &request(user("alice"), action("write"), archived.clone())).await));
    // The property, not the id, decides: record-1 sent as archived denies too.
    let archived_1 = json!({"type": "record", "id": "record-1", "properties": {"status": "archived"}});
    assert!(!decision(&evaluation(&server, &request(user("alice"), action("write"), archived_1)).await));
    // §2.2.5 (rule 6): an admin, by property, writes it.
    let admin = json!({"type": "user", "id": "bob", "properties": {"role": "admin"}});
    assert!(decision(&evaluation(&server, &request(admin, action("write"), archived)).await));
    // §2.2.6, §2.2.7 (rules 7, 8): action properties.
    let delete = |soft: bool| json!({"name": "delete", "properties": {"soft": soft}});
    assert!(decision(&evaluation(&server, &request(user("alice"), delete(true), record("record-1"))).await));
    assert!(!decision(&evaluation(&server, &request(user("alice"), delete(false), record("record-1"))).await));
    assert!(!decision(&evaluation(&server, &request(user("alice"), action("delete"), record("record-1"))).await));
    // §2.2.8: properties beyond the fixture's, on all three.
    let extra = request(
        json!({"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}}),
        json!({"name": "read", "properties": {"method": "GET"}}),
        json!({"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}}),
    );
    assert_eq!(evaluation(&server, &extra).await, json!({"decision": true}));
    // §2.2.9: unknown fields are ignored.
    let mut unknown = request(user("alice"), action("read"), record("record-1"));
    unknown["foo"] = json!("bar");
    unknown["futureField"] = json!({"nested": true});
    assert_eq!(evaluation(&server, &unknown).await, json!({"decision": true}));
    // §2.3.2: a response context, when asked for, is an object.
    let mut explained = extra.clone();
    explained["options"] = json!({"explain": true});
    let answer = evaluation(&server, &explained).await;
    assert!(answer["context"].is_object(), "{answer}");
    // What was ignored is said, and recorded.
    let mut ignored: Vec<&str> =
        answer["context"]["ignored"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ignored.sort_unstable();
    assert_eq!(
        ignored,
        ["action.properties.method", "resource.properties.owner", "subject.properties.department"],
        "{answer}"
    );
    let records = server.audit_events("kind=decision").await;
    let last = records.last().unwrap();
    assert_eq!(last["details"]["decision_id"], answer["context"]["decision_id"]);
    assert_eq!(last["details"]["ignored"].as_array().unwrap().len(), 3, "{last}");

    // §2.4.1, §2.4.2, §2.4.6: missing or mistyped fields are 400s.
    let base = request(user("alice"), action("read"), record("record-1"));
    for field in ["subject", "action", "resource"] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        bad_request(&server, "/access/v1/evaluation", &body).await;
    }
    for (field, sub) in
        [("subject", "type"), ("subject", "id"), ("action", "name"), ("resource", "type"), ("resource", "id")]
    {
        let mut body = base.clone();
        body[field].as_object_mut().unwrap().remove(sub);
        bad_request(&server, "/access/v1/evaluation", &body).await;
    }
    let mut body = base.clone();
    body["subject"] = json!("alice");
    bad_request(&server, "/access/v1/evaluation", &body).await;
    let mut body = base.clone();
    body["action"]["name"] = json!(123);
    bad_request(&server, "/access/v1/evaluation", &body).await;
    // §2.4.3 to §2.4.5: the content type, malformed JSON, an empty body.
    let bytes = serde_json::to_vec(&base).unwrap();
    for (content_type, body, what) in [
        (Some("text/plain"), bytes.clone(), "a text/plain body"),
        (None, bytes.clone(), "no content type"),
        (Some("application/json"), b"{\"subject\": ".to_vec(), "malformed JSON"),
        (Some("application/json"), Vec::new(), "an empty body"),
    ] {
        let reply = server.raw(reqwest::Method::POST, "/access/v1/evaluation", content_type, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", reply.text);
        assert!(reply.json["error"]["message"].is_string(), "{what}: {}", reply.text);
    }
    // §2.5: X-Request-ID is echoed, or made up.
    let response = server
        .client
        .post(server.url("/access/v1/evaluation"))
        .header("X-Request-ID", "cert-2.5.1")
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "cert-2.5.1");
    let response = server.client.post(server.url("/access/v1/evaluation")).json(&base).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers()["x-request-id"].is_empty());
    // §2.6: the same answer every time.
    for _ in 0..5 {
        assert_eq!(evaluation(&server, &base).await, json!({"decision": true}));
    }
}

#[tokio::test]
async fn batch_core_and_properties() {
    let (server, _ca) = start(&[]);
    let decisions = |answer: &Value| -> Vec<bool> {
        assert!(answer.get("decision").is_none(), "no top-level decision with evaluations: {answer}");
        answer["evaluations"].as_array().unwrap().iter().map(|e| e["decision"].as_bool().unwrap()).collect()
    };
    // §3.2.1: structure (the second is implementer-defined).
    let answer = evaluations(
        &server,
        &json!({"subject": user("alice"), "action": action("read"),
                "evaluations": [{"resource": record("record-1")}, {"resource": record("record-2")}]}),
    )
    .await;
    assert_eq!(decisions(&answer).len(), 2);
    assert!(decisions(&answer)[0]);
    // §3.2.2: values and order.
    let answer = evaluations(
        &server,
        &json!({"subject": user("bob"), "resource": record("record-1"),
                "evaluations": [{"action": action("read")}, {"action": action("write")}]}),
    )
    .await;
    assert_eq!(answer, json!({"evaluations": [{"decision": true}, {"decision": false}]}));
    // §3.2.3: resource properties per item.
    let answer = evaluations(
        &server,
        &json!({"subject": user("alice"), "action": action("write"), "evaluations": [
            {"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
            {"resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}]}),
    )
    .await;
    assert_eq!(answer, json!({"evaluations": [{"decision": true}, {"decision": false}]}));
    // §3.2.4: subject properties per item.
    let answer = evaluations(
        &server,
        &json!({"action": action("write"),
                "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}},
                "evaluations": [{"subject": user("alice")},
                                {"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}}]}),
    )
    .await;
    assert_eq!(answer, json!({"evaluations": [{"decision": false}, {"decision": true}]}));
    // §3.2.5: no defaults.
    let answer = evaluations(
        &server,
        &json!({"evaluations": [request(user("alice"), action("read"), record("record-1")),
                                request(user("bob"), action("write"), record("record-1"))]}),
    )
    .await;
    assert_eq!(answer, json!({"evaluations": [{"decision": true}, {"decision": false}]}));
    // §3.2.6: context defaults and overrides (undeclared: accepted).
    let answer = evaluations(
        &server,
        &json!({"subject": user("alice"), "action": action("read"), "context": {"time": "2025-06-27T18:03-07:00"},
                "evaluations": [{"resource": record("record-1")},
                                {"resource": record("record-2"),
                                 "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"}}]}),
    )
    .await;
    assert_eq!(decisions(&answer).len(), 2);
    // §3.2.7: whole-object defaults.
    let answer = evaluations(
        &server,
        &json!({"subject": user("alice"), "action": action("write"),
                "resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}},
                "evaluations": [{}, {"resource": {"type": "record", "id": "record-2",
                                                  "properties": {"status": "archived"}}}]}),
    )
    .await;
    assert_eq!(answer, json!({"evaluations": [{"decision": true}, {"decision": false}]}));
    // §3.4.1: an item missing a field is a deny with a context, in place.
    let answer = evaluations(
        &server,
        &json!({"subject": user("alice"), "action": action("read"), "options": {"evaluations_semantic": "execute_all"},
                "evaluations": [{"resource": record("record-1")}, {}]}),
    )
    .await;
    assert_eq!(decisions(&answer), [true, false]);
    assert!(answer["evaluations"][1]["context"].is_object(), "{answer}");
    // §3.4.2, §3.4.3: without evaluations, or with none, one decision.
    let single = request(user("alice"), action("read"), record("record-1"));
    assert_eq!(evaluations(&server, &single).await, json!({"decision": true}));
    let mut empty = single.clone();
    empty["evaluations"] = json!([]);
    assert_eq!(evaluations(&server, &empty).await, json!({"decision": true}));
}

#[tokio::test]
async fn search_core_and_properties() {
    let (server, _ca) = start(&[]);
    let search = |kind: &'static str, body: Value| {
        let server = &server;
        async move { ok(&server.post(&format!("/access/v1/search/{kind}"), &body).await, &body.to_string()) }
    };
    let users = |answer: &Value| listed(answer, "id", Some("user"));
    let records = |answer: &Value| listed(answer, "id", Some("record"));
    let actions = |answer: &Value| listed(answer, "name", None);
    let context = json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"});

    // §4.2.1 to §4.2.3 (S1): subjects; context and a subject id change nothing.
    let s1 = search(
        "subject",
        json!({"subject": {"type": "user"}, "action": action("read"), "resource": record("record-1")}),
    )
    .await;
    assert_eq!(users(&s1), ["alice", "bob"]);
    let with_context = search(
        "subject",
        json!({"subject": {"type": "user"}, "action": action("read"),
                                                "resource": record("record-1"), "context": context}),
    )
    .await;
    assert_eq!(with_context["results"], s1["results"]);
    let with_id =
        search("subject", json!({"subject": user("alice"), "action": action("read"), "resource": record("record-1")}))
            .await;
    assert_eq!(with_id["results"], s1["results"]);
    // §4.2.4 (S4): with resource properties, as evaluation decides them.
    let archived = json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
    let s4 =
        search("subject", json!({"subject": {"type": "user"}, "action": action("write"), "resource": archived})).await;
    assert_eq!(users(&s4), ["bob"]);
    // The same resource, now sent as active: alice writes it, bob does not.
    let active = json!({"type": "record", "id": "record-2", "properties": {"status": "active"}});
    let flipped =
        search("subject", json!({"subject": {"type": "user"}, "action": action("write"), "resource": active})).await;
    assert_eq!(users(&flipped), ["alice"]);

    // §4.3.1 to §4.3.3 (S2): resources.
    let s2 =
        search("resource", json!({"subject": user("alice"), "action": action("read"), "resource": {"type": "record"}}))
            .await;
    assert!(records(&s2).contains(&"record-1".to_owned()), "{s2}");
    let with_context = search(
        "resource",
        json!({"subject": user("alice"), "action": action("read"),
                                                 "resource": {"type": "record"}, "context": context}),
    )
    .await;
    assert_eq!(with_context["results"], s2["results"]);
    let with_id =
        search("resource", json!({"subject": user("alice"), "action": action("read"), "resource": record("record-1")}))
            .await;
    assert_eq!(with_id["results"], s2["results"]);
    // §4.3.4 (S5): an admin by property.
    let admin = json!({"type": "user", "id": "bob", "properties": {"role": "admin"}});
    let s5 =
        search("resource", json!({"subject": admin, "action": action("write"), "resource": {"type": "record"}})).await;
    assert_eq!(records(&s5), ["record-2"]);
    // alice made an admin by property writes the archive, not the active record.
    let alice_admin = json!({"type": "user", "id": "alice", "properties": {"role": "admin"}});
    let promoted =
        search("resource", json!({"subject": alice_admin, "action": action("write"), "resource": {"type": "record"}}))
            .await;
    assert_eq!(records(&promoted), ["record-2"]);
    // Action properties count in a resource search as in an evaluation.
    let soft = json!({"name": "delete", "properties": {"soft": true}});
    let deletable =
        search("resource", json!({"subject": user("alice"), "action": soft, "resource": {"type": "record"}})).await;
    assert_eq!(records(&deletable), ["record-1", "record-2"]);
    let hard = json!({"name": "delete", "properties": {"soft": false}});
    let none =
        search("resource", json!({"subject": user("alice"), "action": hard, "resource": {"type": "record"}})).await;
    assert!(records(&none).is_empty(), "{none}");

    // §4.4.1, §4.4.2 (S3): actions.
    let s3 = search("action", json!({"subject": user("alice"), "resource": record("record-1")})).await;
    assert_eq!(actions(&s3), ["read", "write"]);
    let with_context =
        search("action", json!({"subject": user("alice"), "resource": record("record-1"), "context": context})).await;
    assert_eq!(with_context["results"], s3["results"]);
    // §4.4.3 (S6).
    let s6 = search("action", json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
                                     "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}})).await;
    assert!(actions(&s6).contains(&"write".to_owned()), "{s6}");

    // §4.5: pages.
    let first = search(
        "subject",
        json!({"subject": {"type": "user"}, "action": action("read"),
                                         "resource": record("record-1"), "page": {"limit": 1}}),
    )
    .await;
    assert_eq!(users(&first), ["alice"]);
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty(), "{first}");
    let second = search(
        "subject",
        json!({"subject": {"type": "user"}, "action": action("read"),
                                          "resource": record("record-1"), "page": {"token": token}}),
    )
    .await;
    assert_eq!(users(&second), ["bob"]);
    assert_eq!(second["page"]["next_token"], "", "{second}");

    // §4.6: nothing matches, not an error.
    let unknown_id =
        search("action", json!({"subject": user("nonexistent-user"), "resource": record("record-1")})).await;
    assert_eq!(unknown_id["results"], json!([]));
    let unknown_type = search(
        "subject",
        json!({"subject": {"type": "spaceship"}, "action": action("read"),
                                                "resource": record("record-1")}),
    )
    .await;
    assert_eq!(unknown_type["results"], json!([]));
    for kind in ["resource", "action"] {
        let body = if kind == "resource" {
            json!({"subject": user("nobody"), "action": action("read"), "resource": {"type": "record"}})
        } else {
            json!({"subject": user("alice"), "resource": {"type": "spaceship", "id": "x"}})
        };
        assert_eq!(search(kind, body).await["results"], json!([]));
    }

    // §4.7: missing fields and input ids are 400s.
    bad_request(
        &server,
        "/access/v1/search/subject",
        &json!({"subject": {"type": "user"}, "resource": record("record-1")}),
    )
    .await;
    bad_request(
        &server,
        "/access/v1/search/resource",
        &json!({"action": action("read"), "resource": {"type": "record"}}),
    )
    .await;
    bad_request(&server, "/access/v1/search/action", &json!({"subject": user("alice")})).await;
    let untyped = json!({"subject": {"type": "user"}, "action": action("read"), "resource": {"type": "record"}});
    bad_request(&server, "/access/v1/search/subject", &untyped).await;
    bad_request(&server, "/access/v1/search/resource", &untyped).await;
    bad_request(
        &server,
        "/access/v1/search/action",
        &json!({"subject": {"type": "user"}, "resource": record("record-1")}),
    )
    .await;
}

#[tokio::test]
async fn discovery_names_https_endpoints_that_answer() {
    let (server, ca) = start(&[]);
    let reply = server.get("/.well-known/authzen-configuration").await;
    let metadata = ok(&reply, "metadata");
    // §6.5: the base used for discovery, and HTTPS endpoints.
    assert_eq!(metadata["policy_decision_point"], server.url(""), "{metadata}");
    for field in [
        "access_evaluation_endpoint",
        "access_evaluations_endpoint",
        "search_subject_endpoint",
        "search_resource_endpoint",
        "search_action_endpoint",
    ] {
        let url = metadata[field].as_str().unwrap_or_else(|| panic!("{field}: {metadata}"));
        assert!(url.starts_with("https://") && !url.contains('?') && !url.contains('#'), "{field}: {url}");
    }
    // The advertised endpoint is the one that answers.
    let url = metadata["access_evaluation_endpoint"].as_str().unwrap();
    let response =
        server.client.post(url).json(&request(user("alice"), action("read"), record("record-1"))).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"decision": true}));
    // §5.1: HTTPS, and only with a certificate the client can verify.
    let stranger =
        reqwest::Client::builder().tls_certs_only([TestCa::new("another CA").reqwest_root()]).build().unwrap();
    let refused = stranger.get(server.url("/healthz")).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    let plain = server.url("/healthz").replace("https://", "http://");
    let trusting = reqwest::Client::builder().tls_certs_only([ca.reqwest_root()]).build().unwrap();
    assert!(trusting.get(&plain).send().await.map_or(true, |r| !r.status().is_success()), "plain HTTP on the TLS port");
}

/// `--strict-context` refuses what the default ignores, naming it; search
/// refuses it the same way.
#[tokio::test]
async fn strict_context_refuses_undeclared_names() {
    let (server, _ca) = start(&["--strict-context"]);
    let mut body = request(user("alice"), action("read"), record("record-1"));
    assert_eq!(evaluation(&server, &body).await, json!({"decision": true}));
    for (field, value, name) in [
        ("context", json!({"ip": "192.168.1.1"}), "context.ip"),
        (
            "subject",
            json!({"type": "user", "id": "alice", "properties": {"department": "Sales"}}),
            "subject.properties.department",
        ),
        ("action", json!({"name": "delete", "properties": {"method": "GET"}}), "action.properties.method"),
    ] {
        let mut broken = body.clone();
        broken[field] = value;
        let reply = server.post("/access/v1/evaluation", &broken).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{broken}: {}", reply.text);
        assert_eq!(reply.json["error"]["code"], "undeclared", "{}", reply.text);
        assert_eq!(reply.json["error"]["field"], name, "{}", reply.text);
    }
    let search = json!({"subject": {"type": "user"}, "action": action("read"), "resource": record("record-1"),
                        "context": {"ip": "192.168.1.1"}});
    let reply = server.post("/access/v1/search/subject", &search).await;
    assert_eq!((reply.status, reply.json["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("context.ip")));
    // Declared action properties pass.
    body["action"] = json!({"name": "delete", "properties": {"soft": true}});
    assert_eq!(evaluation(&server, &body).await, json!({"decision": true}));
}

/// SIGHUP serves a renewed certificate to new connections; a pair that
/// does not load keeps the old one serving.
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let (server, ca) = start(&[]);
    let renewed = TestCa::new("the renewing CA");
    let trusting = |ca: &TestCa| {
        reqwest::Client::builder().tls_certs_only([ca.reqwest_root()]).pool_max_idle_per_host(0).build().unwrap()
    };
    let health = |client: reqwest::Client| {
        let url = server.url("/healthz");
        async move { client.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
    };
    assert!(health(trusting(&ca)).await && !health(trusting(&renewed)).await);

    renewed.leaf("renewed").write(server.files_dir());
    server.signal("HUP");
    server.wait_for_log(std::time::Duration::from_secs(10), |l| l.contains("TLS certificate reloaded")).await;
    assert!(health(trusting(&renewed)).await, "the renewed certificate is served");
    assert!(!health(trusting(&ca)).await, "the old one no longer is");

    // A key that does not match the certificate: refused, the renewed pair stays.
    let other = TestCa::new("a third CA").leaf("mismatch");
    std::fs::write(server.files_dir().join("key.pem"), other.key).unwrap();
    server.signal("HUP");
    server.wait_for_log(std::time::Duration::from_secs(10), |l| l.contains("TLS certificate not reloaded")).await;
    assert!(server.logs().contains("does not match the certificate"), "{}", server.logs());
    assert!(health(trusting(&renewed)).await, "still serving the last good pair");
}
