//! AuthZEN search (`/access/v1/search/{resource,subject,action}`) over the
//! data browser (R10): each principal's listing is computed for that
//! principal from the live store, paginates exactly, and never shows one
//! user what another may see.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, entity_ref};

const SCHEMAS: usize = 300;

/// The granted roles of schema `s<i>`: a mix of one, two and no roles.
fn granted(i: usize) -> &'static [&'static str] {
    match i % 5 {
        0 => &["PUBLIC"],
        1 => &["FINANCE_ADMIN"],
        2 => &["PUBLIC", "REPORTING"],
        3 => &[],
        _ => &["REPORTING"],
    }
}

/// Users and their warehouse roles. lena's `public` is not `PUBLIC`: roles
/// are case-sensitive.
const USERS: &[(&str, &[&str])] = &[
    ("vera", &["PUBLIC"]),
    ("fiona", &["PUBLIC", "FINANCE_ADMIN"]),
    ("ravi", &["REPORTING"]),
    ("nora", &[]),
    ("lena", &["public"]),
];

fn user(id: &str, roles: &[&str]) -> Value {
    json!({"uid": {"type": "Analytics::User", "id": id},
           "attrs": {"email": format!("{id}@example.com"), "workspace_role": "viewer", "is_support": false,
                     "warehouse_roles": roles},
           "parents": []})
}

fn entities(users: &[(&str, &[&str])]) -> Vec<Value> {
    let mut docs: Vec<Value> = users.iter().map(|(id, roles)| user(id, roles)).collect();
    docs.push(json!({"uid": {"type": "Analytics::Connection", "id": "c_wh"},
                     "attrs": {"warehouse": "snowflake", "auth_type": "oauth", "grantees": []}, "parents": []}));
    for i in 0..SCHEMAS {
        docs.push(json!({"uid": {"type": "Analytics::Schema", "id": format!("s{i}")},
                         "attrs": {"connection": entity_ref("Analytics::Connection", "c_wh"),
                                   "granted_roles": granted(i)},
                         "parents": []}));
    }
    // R10 for tables: the table's and its schema's roles must both match.
    // t_pub_fin: a FINANCE_ADMIN table in a PUBLIC schema; t_fin_pub: a
    // PUBLIC table in a FINANCE_ADMIN schema.
    for (table, schema, roles) in [("t_pub_fin", "s0", ["FINANCE_ADMIN"]), ("t_fin_pub", "s1", ["PUBLIC"])] {
        docs.push(json!({"uid": {"type": "Analytics::Table", "id": table},
                         "attrs": {"schema": entity_ref("Analytics::Schema", schema), "granted_roles": roles},
                         "parents": [{"type": "Analytics::Schema", "id": schema}]}));
    }
    docs.push(json!({"uid": {"type": "Analytics::Project", "id": "p"},
                     "attrs": {"owner": entity_ref("Analytics::User", "fiona"), "editors": [],
                               "viewers": [entity_ref("Analytics::User", "vera")],
                               "credential_sharing": "app_only", "app_includes_owner_credentials": true,
                               "shared_with_support": false, "uses_oauth": false},
                     "parents": []}));
    docs
}

/// What R10 lets a user with `roles` browse, in id order (string order:
/// `s10` before `s2`).
fn visible(roles: &[&str]) -> Vec<String> {
    let ids: BTreeSet<String> =
        (0..SCHEMAS).filter(|&i| granted(i).iter().any(|r| roles.contains(r))).map(|i| format!("s{i}")).collect();
    ids.into_iter().collect()
}

async fn setup() -> Server {
    let server = Server::start();
    server.put_entities(&entities(USERS)).await;
    server
}

/// One page of a resource search: ids and the next token.
async fn page(
    server: &Server,
    who: &str,
    action: &str,
    ty: &str,
    token: &str,
    limit: Option<usize>,
) -> (Vec<String>, String) {
    let mut body =
        json!({"subject": {"type": "User", "id": who}, "action": {"name": action}, "resource": {"type": ty}});
    let mut page = json!({"token": token});
    if let Some(l) = limit {
        page["limit"] = json!(l);
    }
    body["page"] = page;
    let r = server.post("/access/v1/search/resource", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{body} → {}", r.text);
    let ids = r.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|item| {
            assert_eq!(item["type"], ty, "{item}");
            item["id"].as_str().expect("id").to_owned()
        })
        .collect();
    (ids, r.json["page"]["next_token"].as_str().expect("page.next_token").to_owned())
}

/// The whole listing for `who`, one unpaged request.
async fn listing(server: &Server, who: &str) -> Vec<String> {
    let (ids, next) = page(server, who, "browse_schema", "Schema", "", None).await;
    assert_eq!(next, "", "{} results fit the default page", ids.len());
    ids
}

#[tokio::test]
async fn browse_schema_lists_exactly_the_schemas_a_role_is_granted() {
    let server = setup().await;
    for (who, roles) in USERS {
        let want = visible(roles);
        assert_eq!(listing(&server, who).await, want, "{who} with {roles:?}");
    }
    // Sanity of the fixture: the listings are neither empty nor everything.
    assert_eq!(visible(&["PUBLIC"]).len(), 120);
    assert_eq!(visible(&["PUBLIC", "FINANCE_ADMIN"]).len(), 180);
    assert!(listing(&server, "lena").await.is_empty(), "`public` is not `PUBLIC`");
    // A principal the store does not know sees nothing.
    assert!(listing(&server, "ghost").await.is_empty());
    // The listing follows the store at once: no cached answer survives a change.
    let mut changed: Vec<(&str, &[&str])> = USERS.to_vec();
    changed[0] = ("vera", &["PUBLIC", "FINANCE_ADMIN"]);
    server.put_entities(&entities(&changed)).await;
    assert_eq!(listing(&server, "vera").await, visible(&["PUBLIC", "FINANCE_ADMIN"]));
    changed[0] = ("vera", &[]);
    server.put_entities(&entities(&changed)).await;
    assert!(listing(&server, "vera").await.is_empty());
}

#[tokio::test]
async fn pages_cover_every_result_exactly_once_in_order() {
    let server = setup().await;
    let want = visible(&["PUBLIC", "FINANCE_ADMIN"]);
    for limit in [1, 7, 100, want.len() - 1, want.len(), want.len() + 1, 10_000] {
        let mut got = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let (ids, next) = page(&server, "fiona", "browse_schema", "Schema", &token, Some(limit)).await;
            pages += 1;
            assert!(ids.len() <= limit, "limit {limit}: a page of {}", ids.len());
            got.extend(ids.iter().cloned());
            if next.is_empty() {
                break;
            }
            assert_eq!(ids.len(), limit, "limit {limit}: only the last page may be short");
            token = next;
            assert!(pages <= want.len(), "limit {limit}: pagination does not end");
        }
        assert_eq!(got, want, "limit {limit}");
        assert_eq!(pages, want.len().div_ceil(limit), "limit {limit}: no empty trailing page");
    }
    // A token this service did not issue is a 400, not a silent restart.
    let body = json!({"subject": {"type": "User", "id": "fiona"}, "action": {"name": "browse_schema"},
                      "resource": {"type": "Schema"}, "page": {"token": "not hex!", "limit": 5}});
    let r = server.post("/access/v1/search/resource", &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn a_listing_is_per_principal_even_right_after_another_users_search() {
    let server = setup().await;
    let fiona = visible(&["PUBLIC", "FINANCE_ADMIN"]);
    let vera = visible(&["PUBLIC"]);
    let finance_only: Vec<&String> = fiona.iter().filter(|id| !vera.contains(id)).collect();
    assert_eq!(finance_only.len(), 60);
    for _ in 0..3 {
        assert_eq!(listing(&server, "fiona").await, fiona);
        let seen = listing(&server, "vera").await;
        assert_eq!(seen, vera);
        assert!(finance_only.iter().all(|id| !seen.contains(id)), "vera saw a FINANCE_ADMIN schema");
        // A page token from fiona's listing gives vera only her own results
        // after that position: tokens carry no one's results.
        let (first, token) = page(&server, "fiona", "browse_schema", "Schema", "", Some(50)).await;
        let (next, _) = page(&server, "vera", "browse_schema", "Schema", &token, Some(1000)).await;
        let last = first.last().unwrap();
        let want: Vec<String> = vera.iter().filter(|id| *id > last).cloned().collect();
        assert_eq!(next, want);
    }
    // The same split for tables: both the table and its schema must match.
    let tables = |who: &'static str| {
        let server = &server;
        async move { page(server, who, "browse_table", "Table", "", None).await.0 }
    };
    assert_eq!(tables("fiona").await, ["t_fin_pub", "t_pub_fin"]);
    assert!(tables("vera").await.is_empty(), "t_fin_pub's schema and t_pub_fin's roles exclude vera");
}

#[tokio::test]
async fn subject_search_lists_who_may_browse_a_schema() {
    let server = setup().await;
    let who_may = |schema: String| {
        let server = &server;
        async move {
            let body = json!({"subject": {"type": "User"}, "action": {"name": "browse_schema"},
                              "resource": {"type": "Schema", "id": schema}});
            let r = server.post("/access/v1/search/subject", &body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.json["page"]["next_token"], "");
            r.json["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    assert_eq!(s["type"], "User", "{s}");
                    s["id"].as_str().unwrap().to_owned()
                })
                .collect::<Vec<_>>()
        }
    };
    for i in 0..10 {
        let mut want: Vec<&str> =
            USERS.iter().filter(|(_, roles)| granted(i).iter().any(|r| roles.contains(r))).map(|(id, _)| *id).collect();
        want.sort_unstable();
        assert_eq!(who_may(format!("s{i}")).await, want, "s{i} granted to {:?}", granted(i));
    }
    assert_eq!(who_may("s1".into()).await, ["fiona"]);
    assert!(who_may("s3".into()).await.is_empty());
    assert!(who_may("no_such_schema".into()).await.is_empty());
}

#[tokio::test]
async fn action_search_lists_what_a_principal_may_do_to_a_resource() {
    let server = setup().await;
    let actions = |who: &'static str, ty: &'static str, id: &'static str| {
        let server = &server;
        async move {
            let body = json!({"subject": {"type": "User", "id": who}, "resource": {"type": ty, "id": id}});
            let r = server.post("/access/v1/search/action", &body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(actions("fiona", "Schema", "s1").await, ["browse_schema"]);
    assert!(actions("vera", "Schema", "s1").await.is_empty());
    assert_eq!(actions("vera", "Schema", "s0").await, ["browse_schema"]);
    assert_eq!(actions("fiona", "Table", "t_pub_fin").await, ["browse_table"]);
    // p: owned by fiona (workspace viewer), vera views it, app sharing on,
    // no OAuth. A viewer: R1 view_notebook, R11 view_app and (app sharing)
    // show_cached_app_results. The owner besides: R2 edit_notebook (single-
    // editor mode, nobody active), R12 schedule_run and include_screenshot,
    // R15 embed_project (no OAuth); not transfer_ownership (R14: admins),
    // not take_over_session (nobody to take over from), not
    // use_owner_credentials (no surface in the context).
    assert_eq!(actions("vera", "Project", "p").await, ["show_cached_app_results", "view_app", "view_notebook"]);
    assert_eq!(
        actions("fiona", "Project", "p").await,
        [
            "edit_notebook",
            "embed_project",
            "include_screenshot",
            "schedule_run",
            "show_cached_app_results",
            "view_app",
            "view_notebook"
        ]
    );
    assert!(actions("nora", "Project", "p").await.is_empty(), "no member, no action");
}

#[tokio::test]
async fn unknown_types_have_no_results() {
    let server = setup().await;
    let (ids, next) = page(&server, "fiona", "browse_schema", "Spaceship", "", None).await;
    assert!(ids.is_empty() && next.is_empty());
    let (ids, _) = page(&server, "fiona", "browse_schema", "Analytics::Spaceship", "", None).await;
    assert!(ids.is_empty());
    let body = json!({"subject": {"type": "Robot"}, "action": {"name": "browse_schema"},
                      "resource": {"type": "Schema", "id": "s0"}});
    let r = server.post("/access/v1/search/subject", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"results": [], "page": {"next_token": ""}}));
    // The known type still answers on the same server.
    assert_eq!(listing(&server, "vera").await.len(), 120);
}

/// A subject (or resource) missing from the store can be allowed nothing:
/// the empty answer says so instead of passing for a genuine empty listing.
#[tokio::test]
async fn a_subject_missing_from_the_store_is_reported() {
    let server = setup().await;
    let body = json!({"subject": {"type": "User", "id": "ghost"}, "action": {"name": "browse_schema"},
                      "resource": {"type": "Schema"}});
    let r = server.post("/access/v1/search/resource", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["results"], json!([]));
    assert_eq!(r.json["context"]["warnings"], json!(["User::\"ghost\" is not in the entity store"]), "{}", r.text);
    let body = json!({"subject": {"type": "User"}, "action": {"name": "browse_schema"},
                      "resource": {"type": "Schema", "id": "s99999"}});
    let r = server.post("/access/v1/search/subject", &body).await;
    assert_eq!(r.json["context"]["warnings"], json!(["Schema::\"s99999\" is not in the entity store"]), "{}", r.text);
    // A stored user's answer carries no warning, even an empty one (nora has no roles).
    let body = json!({"subject": {"type": "User", "id": "nora"}, "action": {"name": "browse_schema"},
                      "resource": {"type": "Schema"}});
    let r = server.post("/access/v1/search/resource", &body).await;
    assert_eq!(r.json, json!({"results": [], "page": {"next_token": ""}}));
}
