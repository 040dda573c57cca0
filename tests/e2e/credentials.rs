//! `POST /v1/credentials/resolve` and `POST /v1/tokens/events`
//! (docs/domain.md#credential-resolution and docs/domain.md#token-events):
//! which credential a query runs under, for every sharing mode and surface,
//! and how token events change the answer. Every expectation is derived from the rules R5, R6, R8,
//! R9 and R16 and the resolution order, not from the service's output.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, entity_ref};

/// An expiry far away, and one long gone.
pub(crate) const FUTURE: &str = "2099-01-01T00:00:00Z";
const PAST: &str = "2020-01-01T00:00:00Z";

/// The warehouse role every ordinary user may assume.
const ANALYST: &str = "ANALYST";

fn user(id: &str, support: bool, roles: &[&str], groups: &[&str]) -> Value {
    json!({
        "uid": {"type": "Analytics::User", "id": id},
        "attrs": {"email": format!("{id}@example.com"), "workspace_role": "editor",
                  "is_support": support, "warehouse_roles": roles},
        "parents": groups.iter().map(|g| json!({"type": "Analytics::Group", "id": g})).collect::<Vec<_>>(),
    })
}

fn project(id: &str, owner: &str, sharing: &str, app_includes_owner: bool, shared_with_support: bool) -> Value {
    json!({
        "uid": {"type": "Analytics::Project", "id": id},
        "attrs": {
            "owner": entity_ref("Analytics::User", owner),
            "editors": [entity_ref("Analytics::User", "eddie"), entity_ref("Analytics::User", "erin"),
                        entity_ref("Analytics::User", "otto")],
            "viewers": [entity_ref("Analytics::User", "vera")],
            "credential_sharing": sharing,
            "app_includes_owner_credentials": app_includes_owner,
            "shared_with_support": shared_with_support,
            "uses_oauth": true,
        },
        "parents": []
    })
}

fn connection(id: &str, role: Option<&str>) -> Value {
    let mut attrs = json!({"warehouse": "snowflake", "auth_type": "oauth",
                           "grantees": [entity_ref("Analytics::Group", "g_data")]});
    if let Some(role) = role {
        attrs["role"] = json!(role);
    }
    json!({"uid": {"type": "Analytics::Connection", "id": id}, "attrs": attrs, "parents": []})
}

/// olivia owns every project; eddie, erin and otto edit them; vera views
/// them; sam is support staff and no member. Everyone but otto is in
/// `g_data`, the grantee group of both connections: `c_wh` (no fixed role)
/// and `c_fixed` (fixed role `ANALYST`). nadia owns `p_nogrant` but holds no
/// grant. `p_<mode>` share with credential_sharing `<mode>` and include the
/// owner's credentials in apps; `p_app_no_creds` does not include them.
pub(crate) fn entities() -> Vec<Value> {
    let mut docs = vec![
        json!({"uid": {"type": "Analytics::Group", "id": "g_data"}, "attrs": {}, "parents": []}),
        user("olivia", false, &[ANALYST], &["g_data"]),
        user("eddie", false, &[ANALYST], &["g_data"]),
        user("erin", false, &[ANALYST], &["g_data"]),
        user("vera", false, &[ANALYST], &["g_data"]),
        user("sam", true, &[ANALYST], &["g_data"]),
        user("otto", false, &[ANALYST], &[]),
        user("nadia", false, &[ANALYST], &[]),
        user("rory", false, &["REPORTER"], &["g_data"]),
        connection("c_wh", None),
        connection("c_fixed", Some(ANALYST)),
        project("p_app_no_creds", "olivia", "notebook_and_app", false, false),
        project("p_support", "olivia", "disabled", false, true),
        project("p_nogrant", "nadia", "notebook_and_app", true, false),
        json!({"uid": {"type": "Analytics::Service", "id": "svc"}, "attrs": {"purpose": "liveness"}, "parents": []}),
    ];
    for mode in ["disabled", "app_only", "notebook_only", "notebook_and_app"] {
        docs.push(project(&format!("p_{mode}"), "olivia", mode, true, false));
    }
    docs
}

pub(crate) async fn setup() -> Server {
    setup_with_args::<&str>(&[]).await
}

/// [`setup`], with more `serve` flags.
pub(crate) async fn setup_with_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Server {
    let server = Server::start_with_args(args);
    server.put_entities(&entities()).await;
    server
}

async fn token_event(server: &Server, body: Value) -> crate::server::Reply {
    server.post("/v1/tokens/events", &body).await
}

/// Sends a token event, expecting 201 and the documented answer shape.
pub(crate) async fn event(
    server: &Server,
    kind: &str,
    token: &str,
    owner: &str,
    conn: &str,
    role: &str,
    expires: &str,
) -> Value {
    let mut body = json!({"kind": kind, "token_id": token, "owner": owner, "connection": conn, "role": role});
    if !expires.is_empty() {
        body["expires_at"] = json!(expires);
    }
    let r = token_event(server, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{kind} {token} → {}", r.text);
    assert!(r.json["seq"].as_u64().is_some_and(|s| s > 1), "{}", r.text);
    assert_eq!(r.json["mac"].as_str().map(str::len), Some(64), "{}", r.text);
    assert_eq!(r.json["kind"], kind);
    assert_eq!(r.json["token"]["token_id"], token, "the caller's answer names the token in clear");
    r.json
}

async fn issue(server: &Server, token: &str, owner: &str, conn: &str, role: &str) {
    event(server, "token.issued", token, owner, conn, role, FUTURE).await;
}

pub(crate) async fn resolve(server: &Server, who: &str, project: &str, conn: &str, surface: &str) -> Value {
    let body = json!({"principal": {"type": "User", "id": who}, "project": project,
                      "connection": conn, "surface": surface});
    let r = server.post("/v1/credentials/resolve", &body).await;
    assert_eq!(r.status, StatusCode::OK, "resolve {body} → {}", r.text);
    r.json
}

/// `token:<hex>` of the keyed digest of `token`: the own-token cache partition.
async fn token_key(server: &Server, token: &str) -> String {
    format!("token:{}", server.audit_digest(token).await.trim_start_matches("hmac-sha256:"))
}

fn assert_shared(answer: &Value, project: &str, owner_token: &str) {
    let want = json!({"decision": "allow", "reasons": [],
                      "credential": {"kind": "owner_token", "token_id": owner_token, "cache_key": format!("shared:{project}")}});
    assert_eq!(answer, &want, "want the owner's token for {project}");
}

async fn assert_own(server: &Server, answer: &Value, token: &str) {
    let want = json!({"decision": "allow", "reasons": [],
                      "credential": {"kind": "own_token", "token_id": token, "cache_key": token_key(server, token).await}});
    assert_eq!(answer, &want, "want the principal's own token {token}");
}

fn assert_deny(answer: &Value, reasons: &[&str]) {
    assert_eq!(answer, &json!({"decision": "deny", "reasons": reasons}));
}

/// The full matrix of R5: four sharing modes (and an app that does not
/// include the owner's credentials) × three surfaces × owner, editor and
/// viewer, everyone holding an active token of their own. `S` = the owner's
/// token is shared (`owner_token`), `T` = the principal's own token.
#[tokio::test]
async fn sharing_mode_and_surface_choose_owner_or_own_token() {
    const MATRIX: &[(&str, &str, [char; 3])] = &[
        //                                 [owner, editor, viewer]
        // disabled: no R5 branch applies on any surface → everyone's own token.
        ("p_disabled", "notebook", ['T', 'T', 'T']),
        ("p_disabled", "app", ['T', 'T', 'T']),
        ("p_disabled", "schedule", ['T', 'T', 'T']),
        // app_only: notebook sharing is off → own tokens in the notebook;
        ("p_app_only", "notebook", ['T', 'T', 'T']),
        // app sharing on + owner credentials included → every member, viewers too;
        ("p_app_only", "app", ['S', 'S', 'S']),
        // schedules with app sharing on → owner and editors, never viewers.
        ("p_app_only", "schedule", ['S', 'S', 'T']),
        // notebook_only: can-edit users share in the notebook, viewers cannot edit;
        ("p_notebook_only", "notebook", ['S', 'S', 'T']),
        // app sharing is off → apps and schedules run under own tokens.
        ("p_notebook_only", "app", ['T', 'T', 'T']),
        ("p_notebook_only", "schedule", ['T', 'T', 'T']),
        // notebook_and_app: both branches on.
        ("p_notebook_and_app", "notebook", ['S', 'S', 'T']),
        ("p_notebook_and_app", "app", ['S', 'S', 'S']),
        ("p_notebook_and_app", "schedule", ['S', 'S', 'T']),
        // notebook_and_app without app_includes_owner_credentials: the app
        // branch needs the inclusion; notebook and schedule do not.
        ("p_app_no_creds", "notebook", ['S', 'S', 'T']),
        ("p_app_no_creds", "app", ['T', 'T', 'T']),
        ("p_app_no_creds", "schedule", ['S', 'S', 'T']),
    ];
    let server = setup().await;
    for who in ["olivia", "eddie", "vera"] {
        issue(&server, &format!("tok-{who}"), who, "c_wh", ANALYST).await;
    }
    let mut asked = Vec::new();
    for (project, surface, row) in MATRIX {
        for (who, want) in ["olivia", "eddie", "vera"].into_iter().zip(row) {
            let answer = resolve(&server, who, project, "c_wh", surface).await;
            match want {
                'S' => assert_shared(&answer, project, "tok-olivia"),
                _ => assert_own(&server, &answer, &format!("tok-{who}")).await,
            }
            asked.push((who, *project, *surface, answer));
        }
    }

    // Every resolution is on the record as a `token.used`, in order, with
    // the token id as its keyed digest and the token's owner.
    let used = server.audit_events("kind=token.used").await;
    assert_eq!(used.len(), asked.len(), "one token.used record per resolution");
    for ((who, project, surface, answer), record) in asked.iter().zip(&used) {
        let credential = &answer["credential"];
        let token = credential["token_id"].as_str().unwrap();
        assert_eq!(record["actor"], format!("User::{who}"), "{record}");
        assert_eq!(record["project"], *project);
        assert_eq!(record["connection"], "c_wh");
        assert_eq!(record["decision"], "allow");
        assert_eq!(record["reasons"], json!([]));
        assert_eq!(record["token_id"], server.audit_digest(token).await, "{record}");
        assert_eq!(record["token_owner"], token.trim_start_matches("tok-"));
        assert_eq!(record["details"]["surface"], *surface);
        assert_eq!(record["details"]["credential"], credential["kind"]);
        assert_eq!(record["details"]["cache_key"], credential["cache_key"]);
        assert!(record["policy_digest"].as_str().unwrap().starts_with("sha256:"));
        assert!(!record.to_string().contains(token), "a clear token id reached the log: {record}");
    }
}

/// R5's forbid: where sharing applies and the owner's token is not active
/// (expired, revoked, past its expiry, or there is none), the answer is
/// `owner_token_expired` — no fallback to the editor's own, active token.
/// Where sharing does not apply, the owner's token does not matter.
#[tokio::test]
async fn an_inactive_owner_token_denies_where_sharing_applies_without_fallback() {
    let server = setup().await;
    issue(&server, "tok-eddie", "eddie", "c_wh", ANALYST).await;
    // No owner token at all: `owner_token_status` is "none".
    assert_deny(&resolve(&server, "eddie", "p_notebook_only", "c_wh", "notebook").await, &["owner_token_expired"]);
    for (i, (kind, expires)) in
        [("token.expired", ""), ("token.revoked", ""), ("token.issued", PAST)].into_iter().enumerate()
    {
        // Active first: shared. A new grant each round (a revoked id stays revoked).
        let token = format!("tok-olivia-{i}");
        event(&server, "token.issued", &token, "olivia", "c_wh", ANALYST, FUTURE).await;
        let answer = resolve(&server, "eddie", "p_notebook_only", "c_wh", "notebook").await;
        assert_shared(&answer, "p_notebook_only", &token);
        event(&server, kind, &token, "olivia", "c_wh", ANALYST, expires).await;
        for (project, surface) in [("p_notebook_only", "notebook"), ("p_app_only", "app"), ("p_app_only", "schedule")] {
            let answer = resolve(&server, "eddie", project, "c_wh", surface).await;
            assert_deny(&answer, &["owner_token_expired"]);
        }
        // The owner too must re-authenticate on a shared surface.
        assert_deny(&resolve(&server, "olivia", "p_notebook_only", "c_wh", "notebook").await, &["owner_token_expired"]);
        // Sharing off (and viewers in the notebook): the owner's token is not
        // involved, the editor's own token runs.
        assert_own(&server, &resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await, "tok-eddie").await;
        assert_own(&server, &resolve(&server, "eddie", "p_notebook_only", "c_wh", "app").await, "tok-eddie").await;
    }
    // The deny is on the record with its reason and no token.
    let used = server.audit_events("kind=token.used&decision=deny").await;
    let last = used.last().expect("deny records");
    assert_eq!(last["reasons"], json!(["owner_token_expired"]));
    assert_eq!(last["actor"], "User::olivia");
    assert!(last.get("token_id").is_none(), "{last}");
    assert_eq!(used.len(), 1 + 3 * 4, "every denied resolution is a token.used record");
}

/// Sharing never hands out a token its owner could not use: the owner's
/// token passes R6 for its owner before it is shared.
#[tokio::test]
async fn a_shared_owner_token_must_pass_r6() {
    let server = setup().await;
    // A blocked admin role on the owner's token.
    issue(&server, "tok-olivia", "olivia", "c_wh", "ACCOUNTADMIN").await;
    assert_deny(&resolve(&server, "eddie", "p_notebook_only", "c_wh", "notebook").await, &["blocked_role"]);
    // A role that does not match the connection's fixed role (case matters).
    issue(&server, "tok-olivia-fixed", "olivia", "c_fixed", "analyst").await;
    assert_deny(&resolve(&server, "eddie", "p_notebook_only", "c_fixed", "notebook").await, &["role_mismatch"]);
    // Fixed: the owner re-authenticates with the right role, sharing resumes.
    issue(&server, "tok-olivia", "olivia", "c_wh", ANALYST).await;
    assert_shared(
        &resolve(&server, "eddie", "p_notebook_only", "c_wh", "notebook").await,
        "p_notebook_only",
        "tok-olivia",
    );
}

/// R6 and R8 on the principal's own token, where no sharing applies.
#[tokio::test]
async fn own_token_denials_name_their_reason() {
    let server = setup().await;
    issue(&server, "tok-olivia", "olivia", "c_wh", ANALYST).await;
    // Sharing off and no token at all → re-authenticate (never the service account).
    assert_deny(&resolve(&server, "erin", "p_disabled", "c_wh", "notebook").await, &["reauth_required"]);
    // A token for another connection does not count.
    issue(&server, "tok-erin-fixed", "erin", "c_fixed", ANALYST).await;
    assert_deny(&resolve(&server, "erin", "p_disabled", "c_wh", "schedule").await, &["reauth_required"]);
    // Past its expiry (R6: expires_at <= now) → re-authenticate.
    event(&server, "token.issued", "tok-eddie", "eddie", "c_wh", ANALYST, PAST).await;
    assert_deny(&resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await, &["reauth_required"]);
    // A blocked admin role (R6) → blocked_role, even active.
    issue(&server, "tok-vera", "vera", "c_wh", "ACCOUNTADMIN").await;
    assert_deny(&resolve(&server, "vera", "p_disabled", "c_wh", "app").await, &["blocked_role"]);
    // Fixed connection role, compared case-sensitively (R6) → role_mismatch;
    // the exact role is fine.
    issue(&server, "tok-eddie-fixed", "eddie", "c_fixed", "analyst").await;
    assert_deny(&resolve(&server, "eddie", "p_disabled", "c_fixed", "notebook").await, &["role_mismatch"]);
    issue(&server, "tok-eddie-fixed", "eddie", "c_fixed", ANALYST).await;
    assert_own(&server, &resolve(&server, "eddie", "p_disabled", "c_fixed", "notebook").await, "tok-eddie-fixed").await;
    // R8 for the identity whose token runs: otto has a good token but no
    // USE CONNECTION grant → no_connection_grant.
    issue(&server, "tok-otto", "otto", "c_wh", ANALYST).await;
    assert_deny(&resolve(&server, "otto", "p_disabled", "c_wh", "notebook").await, &["no_connection_grant"]);
    // R8: a fixed role the principal may not assume → role_not_authorized.
    issue(&server, "tok-rory", "rory", "c_fixed", ANALYST).await;
    assert_deny(&resolve(&server, "rory", "p_disabled", "c_fixed", "notebook").await, &["role_not_authorized"]);
    // R8 for the owner when the owner's token would run: nadia (no grant)
    // shares an active token; eddie, an editor with a grant and a token of
    // his own, is still refused — the shared token would run the query. A
    // viewer in the notebook (no sharing for viewers) runs their own token.
    issue(&server, "tok-nadia", "nadia", "c_wh", ANALYST).await;
    issue(&server, "tok-eddie", "eddie", "c_wh", ANALYST).await;
    for surface in ["notebook", "app", "schedule"] {
        assert_deny(&resolve(&server, "eddie", "p_nogrant", "c_wh", surface).await, &["no_connection_grant"]);
    }
    issue(&server, "tok-vera", "vera", "c_wh", ANALYST).await;
    assert_own(&server, &resolve(&server, "vera", "p_nogrant", "c_wh", "notebook").await, "tok-vera").await;
}

/// R9: a support user on a project shared with support inherits the owner's
/// credentials on every surface, whatever the sharing mode (p_support shares
/// nothing); without `shared_with_support` nothing extra. R5's forbid still
/// applies to the inherited credentials.
#[tokio::test]
async fn support_users_inherit_owner_credentials_only_when_shared_with_support() {
    let server = setup().await;
    issue(&server, "tok-olivia", "olivia", "c_wh", ANALYST).await;
    for surface in ["notebook", "app", "schedule"] {
        let answer = resolve(&server, "sam", "p_support", "c_wh", surface).await;
        assert_shared(&answer, "p_support", "tok-olivia");
        // Not shared with support, and sam is no member: his own token,
        // which he does not have.
        assert_deny(&resolve(&server, "sam", "p_disabled", "c_wh", surface).await, &["reauth_required"]);
        assert_deny(&resolve(&server, "sam", "p_notebook_and_app", "c_wh", surface).await, &["reauth_required"]);
        // An ordinary editor on p_support gets no owner credentials (sharing off).
        assert_deny(&resolve(&server, "erin", "p_support", "c_wh", surface).await, &["reauth_required"]);
    }
    event(&server, "token.revoked", "tok-olivia", "olivia", "c_wh", ANALYST, "").await;
    for surface in ["notebook", "app", "schedule"] {
        assert_deny(&resolve(&server, "sam", "p_support", "c_wh", surface).await, &["owner_token_expired"]);
    }
}

/// R16: a Service gets the service account for `liveness` and
/// `schema_refresh` only; a User never does, whatever the purpose.
#[tokio::test]
async fn only_services_with_an_allowed_purpose_get_the_service_account() {
    let server = setup().await;
    let ask = |principal: (&str, &str), purpose: Option<&str>| {
        let mut body = json!({"principal": {"type": principal.0, "id": principal.1},
                              "project": "p_disabled", "connection": "c_wh", "surface": "schedule"});
        if let Some(p) = purpose {
            body["purpose"] = json!(p);
        }
        body
    };
    for purpose in ["liveness", "schema_refresh"] {
        let r = server.post("/v1/credentials/resolve", &ask(("Service", "svc"), Some(purpose))).await;
        let want = json!({"decision": "allow", "reasons": [],
                          "credential": {"kind": "service_account", "cache_key": "service:c_wh"}});
        assert_eq!(r.json, want, "{purpose}");
    }
    for purpose in [Some("scheduler"), Some("LIVENESS"), None] {
        let r = server.post("/v1/credentials/resolve", &ask(("Service", "svc"), purpose)).await;
        assert_deny(&r.json, &["no_permit"]);
    }
    // A user asking with a service purpose still needs their own token.
    let r = server.post("/v1/credentials/resolve", &ask(("User", "erin"), Some("liveness"))).await;
    assert_deny(&r.json, &["reauth_required"]);
    let records = server.audit_events("kind=token.used&actor=Service::svc").await;
    assert_eq!(records.len(), 5, "{records:?}");
    assert_eq!(records[0]["details"]["purpose"], "liveness");
    assert_eq!(records[0]["details"]["credential"], "service_account");
    assert_eq!(records[0]["decision"], "allow");
    assert_eq!(records[2]["decision"], "deny");
}

/// Own-token cache partitions differ between users, are stable for a token
/// (across calls, surfaces, projects and refreshes) and change with the
/// token; the owner-token partition is one per project.
#[tokio::test]
async fn cache_keys_partition_per_token_and_per_shared_project() {
    let server = setup().await;
    issue(&server, "tok-eddie", "eddie", "c_wh", ANALYST).await;
    issue(&server, "tok-erin", "erin", "c_wh", ANALYST).await;
    issue(&server, "tok-olivia", "olivia", "c_wh", ANALYST).await;
    let key = |a: &Value| a["credential"]["cache_key"].as_str().unwrap().to_owned();
    let eddie = key(&resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await);
    let erin = key(&resolve(&server, "erin", "p_disabled", "c_wh", "notebook").await);
    assert_ne!(eddie, erin);
    for k in [&eddie, &erin] {
        let hex = k.strip_prefix("token:").unwrap();
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{k}");
    }
    assert_eq!(key(&resolve(&server, "eddie", "p_notebook_only", "c_wh", "app").await), eddie);
    event(&server, "token.refreshed", "tok-eddie", "eddie", "c_wh", ANALYST, "2098-01-01T00:00:00Z").await;
    assert_eq!(key(&resolve(&server, "eddie", "p_disabled", "c_wh", "schedule").await), eddie);
    // A new token (the old one revoked) is a new partition.
    event(&server, "token.revoked", "tok-eddie", "eddie", "c_wh", ANALYST, "").await;
    issue(&server, "tok-eddie-2", "eddie", "c_wh", ANALYST).await;
    let renewed = key(&resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await);
    assert_ne!(renewed, eddie);
    assert_eq!(renewed, token_key(&server, "tok-eddie-2").await);
    // Sharers of one project share its partition; another project has its own.
    let shared_e = key(&resolve(&server, "eddie", "p_notebook_only", "c_wh", "notebook").await);
    let shared_r = key(&resolve(&server, "erin", "p_notebook_only", "c_wh", "notebook").await);
    assert_eq!((shared_e.as_str(), shared_r.as_str()), ("shared:p_notebook_only", "shared:p_notebook_only"));
    assert_eq!(key(&resolve(&server, "eddie", "p_app_only", "c_wh", "app").await), "shared:p_app_only");
}

/// Token events drive the token store: issue, refresh, revoke and expire
/// change the next resolution; a revoked token is never refreshed (409); a
/// bad event is refused and changes nothing.
#[tokio::test]
async fn token_events_change_resolution_outcomes() {
    let server = setup().await;
    let ask = || resolve(&server, "eddie", "p_disabled", "c_wh", "notebook");
    assert_deny(&ask().await, &["reauth_required"]);
    let issued = event(&server, "token.issued", "tok-eddie", "eddie", "c_wh", ANALYST, FUTURE).await;
    let token = &issued["token"];
    assert_eq!(
        (&token["owner"], &token["connection"], &token["status"], &token["role"], &token["expires_at"]),
        (&json!("eddie"), &json!("c_wh"), &json!("active"), &json!(ANALYST), &json!("2099-01-01T00:00:00.000Z"))
    );
    assert_own(&server, &ask().await, "tok-eddie").await;

    let expired = event(&server, "token.expired", "tok-eddie", "eddie", "c_wh", ANALYST, "").await;
    assert_eq!(expired["token"]["status"], "expired");
    assert_deny(&ask().await, &["reauth_required"]);
    // An expired token may be refreshed.
    let refreshed = event(&server, "token.refreshed", "tok-eddie", "eddie", "c_wh", ANALYST, FUTURE).await;
    assert_eq!(refreshed["token"]["status"], "active");
    assert!(refreshed["seq"].as_u64() > expired["seq"].as_u64());
    assert_own(&server, &ask().await, "tok-eddie").await;

    let revoked = event(&server, "token.revoked", "tok-eddie", "eddie", "c_wh", ANALYST, "").await;
    assert_eq!(revoked["token"]["status"], "revoked");
    assert_deny(&ask().await, &["reauth_required"]);
    let before = server.audit_events("").await.len();
    let refresh = json!({"kind": "token.refreshed", "token_id": "tok-eddie", "owner": "eddie",
                         "connection": "c_wh", "expires_at": FUTURE});
    let r = token_event(&server, refresh).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "token_revoked");
    // Expiry does not un-revoke either.
    event(&server, "token.expired", "tok-eddie", "eddie", "c_wh", ANALYST, "").await;
    assert_deny(&ask().await, &["reauth_required"]);
    // Nor does issuing it again: revocation is final for a token id.
    let reissue = json!({"kind": "token.issued", "token_id": "tok-eddie", "owner": "eddie",
                         "connection": "c_wh", "expires_at": FUTURE});
    let r = token_event(&server, reissue).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "token_revoked", "{}", r.text);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("new token id"), "{}", r.text);
    assert_deny(&ask().await, &["reauth_required"]);

    // `expires_at` is required for issued and refreshed, and must be RFC 3339.
    for (kind, expires) in [("token.issued", None), ("token.refreshed", None), ("token.issued", Some("tomorrow"))] {
        let mut body = json!({"kind": kind, "token_id": "tok-new", "owner": "eddie", "connection": "c_wh"});
        if let Some(e) = expires {
            body["expires_at"] = json!(e);
        }
        let r = token_event(&server, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{kind}: {}", r.text);
        assert_eq!(r.json["error"]["field"], "expires_at", "{}", r.text);
    }
    // A token cannot change owners.
    let r = token_event(
        &server,
        json!({"kind": "token.revoked", "token_id": "tok-eddie", "owner": "erin",
                                        "connection": "c_wh"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // Refused events are not recorded (the one accepted `token.expired`
    // plus the two resolutions after it are): nothing else changed.
    assert_eq!(server.audit_events("").await.len(), before + 3);
    assert_deny(&ask().await, &["reauth_required"]);
    // A new token brings eddie back.
    issue(&server, "tok-new", "eddie", "c_wh", ANALYST).await;
    assert_own(&server, &ask().await, "tok-new").await;
}

/// Sends `kind` for `tokens` all at once (one task each, so the service
/// sees them concurrently and groups them into shared commits); the
/// answers' status codes and bodies, in the order of `tokens`.
async fn events_at_once(server: &Server, kind: &'static str, tokens: &[String]) -> Vec<(StatusCode, Value)> {
    let client = crate::server::authorized_client(&server.api_key, reqwest::Client::builder());
    let url = server.url("/v1/tokens/events");
    let tasks: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (client, url) = (client.clone(), url.clone());
            let body = json!({"kind": kind, "token_id": token, "owner": "eddie", "connection": "c_wh",
                              "role": ANALYST, "expires_at": FUTURE});
            tokio::spawn(async move {
                let r = client.post(url).json(&body).send().await.expect("send");
                (r.status(), r.json::<Value>().await.expect("a JSON answer"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

#[tokio::test]
async fn concurrent_token_events_each_get_their_own_answer_and_record() {
    let server = setup().await;
    let tokens: Vec<String> = (0..48).map(|i| format!("tok-burst-{i}")).collect();
    let mut seqs = std::collections::BTreeSet::new();
    for (kind, status) in [("token.issued", "active"), ("token.revoked", "revoked")] {
        for (i, (code, body)) in events_at_once(&server, kind, &tokens).await.into_iter().enumerate() {
            assert_eq!(code, StatusCode::CREATED, "{kind} {}: {body}", tokens[i]);
            assert_eq!((&body["token"]["token_id"], &body["token"]["status"]), (&json!(tokens[i]), &json!(status)));
            assert!(seqs.insert(body["seq"].as_u64().expect("seq")), "two answers share seq {}", body["seq"]);
        }
    }
    // Every state change stuck: refreshing a revoked token is refused, for each.
    for (i, (code, body)) in events_at_once(&server, "token.refreshed", &tokens).await.into_iter().enumerate() {
        assert_eq!(code, StatusCode::CONFLICT, "{}: {body}", tokens[i]);
        assert_eq!(body["error"]["code"], "token_revoked", "{body}");
    }
    // One record per accepted event, none for the refused ones.
    let records = server.audit_events("kind=token.revoked").await;
    assert_eq!(records.len(), tokens.len());
    assert!(server.audit_events("kind=token.refreshed").await.is_empty());
    for record in &records {
        assert_eq!(record["details"]["status"], "revoked", "{record}");
    }
    // The events that arrived together reached the chain and it verifies.
    let report = server.get("/v1/audit/verify").await;
    assert_eq!(report.json["ok"], true, "{}", report.text);
}

/// A token's state and the record of the event that set it commit in one
/// transaction: killed (`kill -9`) in the middle of a burst of events, the
/// service leaves exactly the tokens the log records, no state without its
/// record (the log would miss it) and no record without its state.
#[tokio::test]
async fn a_kill_mid_burst_leaves_every_stored_token_on_the_record() {
    let mut server = Server::start();
    let url = server.url("/v1/tokens/events");
    let mut load = Vec::new();
    for task in 0..16 {
        let (client, url, key) = (reqwest::Client::new(), url.clone(), server.api_key.clone());
        load.push(tokio::spawn(async move {
            for i in 0.. {
                let body = json!({"kind": "token.issued", "token_id": format!("burst-{task}-{i}"), "owner": "olivia",
                                  "connection": "c_wh", "role": ANALYST, "expires_at": FUTURE});
                match client.post(&url).bearer_auth(&key).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => {}
                    _ => return i,
                }
            }
            0
        }));
    }
    let started = std::time::Instant::now();
    while server.audit_events("kind=token.issued").await.len() < 200 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the burst did not get going");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.kill();
    for task in load {
        task.await.unwrap();
    }
    server.start_again();

    let out = std::process::Command::new("sqlite3")
        .arg(server.database_path())
        .arg("SELECT token_id FROM tokens ORDER BY token_id")
        .output()
        .expect("run sqlite3 (apt install sqlite3)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert!(stored.len() >= 200, "{} tokens stored", stored.len());
    let mut digests = std::collections::BTreeSet::new();
    for token in &stored {
        let r = server.post("/v1/audit/digest", &json!({"value": token})).await;
        digests.insert(r.json["digest"].as_str().expect("digest").to_owned());
    }
    let recorded: std::collections::BTreeSet<String> = server
        .audit_events("kind=token.issued")
        .await
        .iter()
        .map(|r| r["token_id"].as_str().expect("token_id").to_owned())
        .collect();
    assert_eq!(recorded.len(), stored.len(), "one record per stored token (issued once each)");
    assert_eq!(recorded, digests, "the stored tokens are exactly the recorded ones");
    let verify = server.get("/v1/audit/verify").await;
    assert_eq!(verify.json["ok"], true, "{}", verify.text);
}
