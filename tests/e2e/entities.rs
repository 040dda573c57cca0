//! `GET|PUT /v1/entities`: the stored entity set, validated against the
//! schema, replaced whole, durable across restarts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, bundle_files, eval, pack_dir, pack_entities};

/// Entities as a comparable, order-free list.
fn sorted(mut docs: Vec<Value>) -> Vec<Value> {
    docs.sort_by_key(|d| (d["uid"]["type"].to_string(), d["uid"]["id"].to_string()));
    docs
}

async fn stored(server: &Server) -> Vec<Value> {
    let r = server.get("/v1/entities").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json.as_array().expect("an array of entities").clone()
}

/// Olivia (the owner) may view p_single only if the notebook entities are in force.
fn owner_views() -> Value {
    eval(("User", "olivia"), "view_notebook", ("Project", "p_single"))
}

#[tokio::test]
async fn put_then_get_returns_the_set_and_decisions_use_it() {
    let server = Server::start();
    assert_eq!(stored(&server).await, Vec::<Value>::new());
    assert!(!server.decide(&owner_views()).await);

    let docs = pack_entities("notebook");
    server.put_entities(&docs).await;
    assert_eq!(sorted(stored(&server).await), sorted(docs.clone()));
    assert!(server.decide(&owner_views()).await);

    // A PUT replaces the whole set: a smaller one drops the project.
    let users: Vec<Value> = docs.iter().filter(|d| d["uid"]["type"] == "Analytics::User").cloned().collect();
    server.put_entities(&users).await;
    assert_eq!(sorted(stored(&server).await), sorted(users));
    assert!(!server.decide(&owner_views()).await);
}

#[tokio::test]
async fn invalid_sets_are_refused_naming_the_problem_and_the_old_set_stays() {
    let server = Server::start();
    let docs = pack_entities("notebook");
    server.put_entities(&docs).await;

    let with = |extra: Value| {
        let mut all = docs.clone();
        all.push(extra);
        Value::Array(all)
    };
    let not_an_object = format!("entity {}", docs.len());
    let cases: [(&str, Value, &str); 6] = [
        (
            "wrong attribute type",
            with(json!({"uid": {"type": "Analytics::User", "id": "zed"},
                        "attrs": {"email": 42, "workspace_role": "editor", "is_support": false, "warehouse_roles": []},
                        "parents": []})),
            "email",
        ),
        (
            "missing required attribute",
            with(json!({"uid": {"type": "Analytics::User", "id": "zed"},
                        "attrs": {"email": "z@example.com", "is_support": false, "warehouse_roles": []},
                        "parents": []})),
            "workspace_role",
        ),
        (
            "unknown entity type",
            with(json!({"uid": {"type": "Analytics::Spaceship", "id": "x"}, "attrs": {}, "parents": []})),
            "Spaceship",
        ),
        ("duplicate uid", with(docs[0].clone()), "olivia"),
        // Named by its position in the upload.
        ("not an entity object", with(json!("olivia")), &*not_an_object),
        (
            "parent of a type not allowed",
            with(json!({"uid": {"type": "Analytics::Group", "id": "g"}, "attrs": {},
                        "parents": [{"type": "Analytics::Project", "id": "p_single"}]})),
            "Group",
        ),
    ];
    for (name, body, needle) in cases {
        let r = server.put("/v1/entities", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        let error = &r.json["error"];
        assert!(error["code"].as_str().is_some_and(|c| !c.is_empty()), "{name}: {}", r.text);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{name}: message should name `{needle}`: {message}");
        // The previous set stays in force.
        assert_eq!(sorted(stored(&server).await), sorted(docs.clone()), "{name}");
        assert!(server.decide(&owner_views()).await, "{name}");
    }
    assert_eq!(
        server.put("/v1/entities", &with(docs[0].clone())).await.json["error"]["code"],
        "invalid_entities",
        "duplicates are an entity error"
    );
}

#[tokio::test]
async fn the_set_survives_a_restart() {
    let mut server = Server::start();
    let docs = pack_entities("data_browser");
    server.put_entities(&docs).await;
    let browse = eval(("User", "fiona"), "browse_schema", ("Schema", "s_finance"));
    assert!(server.decide(&browse).await);

    server.restart();
    assert_eq!(sorted(stored(&server).await), sorted(docs));
    assert!(server.decide(&browse).await);
    assert!(!server.decide(&eval(("User", "vera"), "browse_schema", ("Schema", "s_finance"))).await);
}

#[tokio::test]
async fn a_bundle_that_the_stored_entities_do_not_fit_is_refused() {
    let server = Server::start();
    server.put_entities(&pack_entities("cache")).await;
    let before = server.digest().await;
    // A valid bundle in which `CacheEntry` is renamed: the stored cache
    // entries no longer fit its schema.
    let mut files = bundle_files(&pack_dir());
    let rename = |text: &Value| text.as_str().unwrap().replace("CacheEntry", "QueryCacheEntry");
    let schema = rename(&files["analytics.cedarschema"]);
    let cache = rename(&files["cache.cedar"]);
    files.insert("analytics.cedarschema".into(), json!(schema));
    files.insert("cache.cedar".into(), json!(cache));
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "entities_do_not_fit_schema");
    assert_eq!(server.digest().await, before);
    // With the entities gone, the same bundle is accepted.
    server.put_entities(&[]).await;
    let r = server.put("/v1/policies", &json!({"files": files})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_ne!(server.digest().await, before);
}

/// Every accepted replacement is on the record (issue 19, row 4): who made
/// it, the digests of the set before and after, and what changed per type,
/// naming the entities. Promoting a user to admin leaves a trace.
#[tokio::test]
async fn a_replacement_is_recorded_with_what_it_changed() {
    let server = Server::start();
    let docs = pack_entities("notebook");
    server.put_entities(&docs).await;
    let mut promoted = docs.clone();
    let olivia = promoted
        .iter_mut()
        .find(|d| d["uid"]["type"] == "Analytics::User" && d["uid"]["id"] == "olivia")
        .expect("olivia in the pack's notebook entities");
    olivia["attrs"]["workspace_role"] = json!("admin");
    promoted.retain(|d| d["uid"]["type"] != "Analytics::Project" || d["uid"]["id"] != "p_single");
    server.put_entities(&promoted).await;
    // Refused sets record nothing.
    let refused = server.put("/v1/entities", &json!([{"uid": {"type": "Nope", "id": "x"}}])).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

    let records = server.audit_events("kind=entities.replaced").await;
    assert_eq!(records.len(), 2, "{records:?}");
    let key_id = server.api_key.split('_').nth(1).expect("wrnt_<id>_<secret>");
    let (first, second) = (&records[0], &records[1]);
    assert_eq!(first["actor"], format!("api_key:{key_id}"));
    assert_eq!(first["policy_digest"], server.digest().await);
    assert_eq!((&first["details"]["count_before"], &first["details"]["count_after"]), (&json!(0), &json!(docs.len())));
    let users = docs.iter().filter(|d| d["uid"]["type"] == "Analytics::User").count();
    let of_type = |d: &Value, name: &str| -> Value {
        d["changes"].as_array().unwrap().iter().find(|c| c["type"] == name).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(of_type(&first["details"], "Analytics::User")["added"], users);

    let d = &second["details"];
    assert_eq!(d["digest_before"], first["details"]["digest_after"], "the digests chain: {d}");
    assert_ne!(d["digest_before"], d["digest_after"]);
    assert_eq!((&d["count_before"], &d["count_after"]), (&json!(docs.len()), &json!(docs.len() - 1)));
    let user = &of_type(d, "Analytics::User");
    assert_eq!((&user["changed"], &user["changed_ids"]), (&json!(1), &json!(["olivia"])), "{d}");
    assert_eq!((&user["added"], &user["removed"]), (&json!(0), &json!(0)));
    let project = &of_type(d, "Analytics::Project");
    assert_eq!((&project["removed"], &project["removed_ids"]), (&json!(1), &json!(["p_single"])), "{d}");
    assert_eq!(d["changes"].as_array().unwrap().len(), 2, "only the types that changed: {d}");
}
