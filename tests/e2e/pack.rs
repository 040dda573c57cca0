//! The policy pack's four headline behaviours over HTTP: AuthZEN evaluations
//! against entities stored with `PUT /v1/entities` (taken from the pack's own
//! policy tests, `policies/tests/*.json`).

use serde_json::{Value, json};

use crate::server::{Server, entity_ref, eval, pack_entities};

fn find<'a>(docs: &'a mut [Value], id: &str) -> &'a mut Value {
    docs.iter_mut().find(|d| d["uid"]["id"] == id).unwrap_or_else(|| panic!("no entity `{id}`"))
}

fn output(id: &str, project: &str, producer: &str, session: &str) -> Value {
    json!({
        "uid": {"type": "Analytics::CellOutput", "id": id},
        "attrs": {
            "project": entity_ref("Analytics::Project", project),
            "produced_by": entity_ref("Analytics::User", producer),
            "session": session
        },
        "parents": []
    })
}

/// The reasons of an explained AuthZEN evaluation.
async fn reasons(server: &Server, mut body: Value) -> Value {
    body["options"] = json!({"explain": true});
    server.evaluation(&body).await["context"]["reasons"].clone()
}

#[tokio::test]
async fn session_takeover_only_in_single_editor_mode() {
    let server = Server::start();
    server.put_entities(&pack_entities("notebook")).await;
    let take_over = |user: &str, project: &str| eval(("User", user), "take_over_session", ("Project", project));

    // Single-editor mode (p_single: sharing disabled, eddie active).
    assert!(server.decide(&take_over("erin", "p_single")).await, "an editor takes over another editor");
    assert!(server.decide(&take_over("olivia", "p_single")).await, "the owner takes over");
    assert!(!server.decide(&take_over("eddie", "p_single")).await, "not one's own session");
    assert!(!server.decide(&take_over("vera", "p_single")).await, "viewers never");
    // Notebook sharing on: nothing to take over, even with an active editor.
    assert!(!server.decide(&take_over("erin", "p_nb_app")).await);
    assert!(!server.decide(&take_over("erin", "p_multi")).await);
    // The same project with notebook sharing turned on (as properties): denied.
    for sharing in ["notebook_only", "notebook_and_app"] {
        let mut body = take_over("erin", "p_single");
        body["resource"]["properties"] = json!({"credential_sharing": sharing});
        assert!(!server.decide(&body).await, "{sharing}");
    }
    // And with an unknown sharing value: still single-editor mode.
    let mut body = take_over("erin", "p_single");
    body["resource"]["properties"] = json!({"credential_sharing": "Notebook_Only"});
    assert!(server.decide(&body).await);
    assert_eq!(reasons(&server, take_over("erin", "p_nb_app")).await, json!(["no_permit"]));
}

#[tokio::test]
async fn outputs_are_hidden_after_a_takeover_and_from_viewers() {
    let server = Server::start();
    let mut docs = pack_entities("notebook");
    server.put_entities(&docs).await;
    let view = |user: &str, out: &str| eval(("User", user), "view_cell_output", ("CellOutput", out));

    // Before: eddie is the active editor of p_single (session s2) and sees his output.
    assert!(server.decide(&view("eddie", "out_single_cur")).await);
    // Nobody else does, viewers included, while his session is active.
    for other in ["erin", "olivia", "vera", "oscar"] {
        assert!(!server.decide(&view(other, "out_single_cur")).await, "{other}");
    }
    // With notebook sharing on, the viewer sees outputs (the contrast).
    assert!(server.decide(&view("vera", "out_multi")).await);

    // erin takes over: the project now has erin active in a new session s3,
    // where she produced an output.
    assert!(server.decide(&eval(("User", "erin"), "take_over_session", ("Project", "p_single"))).await);
    let p_single = find(&mut docs, "p_single");
    p_single["attrs"]["active_editor"] = entity_ref("Analytics::User", "erin");
    p_single["attrs"]["current_session"] = json!("s3");
    docs.push(output("out_erin_s3", "p_single", "erin", "s3"));
    server.put_entities(&docs).await;

    // The old editor's outputs are gone; the new editor sees hers.
    assert!(!server.decide(&view("eddie", "out_single_cur")).await, "eddie's output is hidden after the takeover");
    assert!(server.decide(&view("erin", "out_erin_s3")).await);
    for other in ["eddie", "olivia", "vera"] {
        assert!(!server.decide(&view(other, "out_erin_s3")).await, "{other}");
    }
    // And now eddie may take the session back, erin may not take her own.
    assert!(server.decide(&eval(("User", "eddie"), "take_over_session", ("Project", "p_single"))).await);
    assert!(!server.decide(&eval(("User", "erin"), "take_over_session", ("Project", "p_single"))).await);
}

#[tokio::test]
async fn support_uses_owner_credentials_only_when_shared_with_support() {
    let server = Server::start();
    server.put_entities(&pack_entities("support")).await;
    let use_owner = |user: &str, project: &str, token: &str| {
        let mut body = eval(("User", user), "use_owner_credentials", ("Project", project));
        body["context"] = json!({"surface": "notebook", "owner_token_status": token});
        body
    };

    assert!(server.decide(&use_owner("sam", "p_support", "active")).await);
    assert!(!server.decide(&use_owner("sam", "p_nosupport", "active")).await);
    assert_eq!(reasons(&server, use_owner("sam", "p_nosupport", "active")).await, json!(["no_permit"]));
    // A non-support user gains nothing from shared_with_support.
    assert!(!server.decide(&use_owner("oscar", "p_support", "active")).await);
    // The owner's token must still be active.
    assert_eq!(reasons(&server, use_owner("sam", "p_support", "expired")).await, json!(["owner_token_expired"]));

    // Flipping the project's flag (properties over the stored project) flips the decision.
    let mut shared = use_owner("sam", "p_nosupport", "active");
    shared["resource"]["properties"] = json!({"shared_with_support": true});
    assert!(server.decide(&shared).await);
    let mut unshared = use_owner("sam", "p_support", "active");
    unshared["resource"]["properties"] = json!({"shared_with_support": false});
    assert!(!server.decide(&unshared).await);
    // And so does the user's support flag.
    let mut not_support = use_owner("sam", "p_support", "active");
    not_support["subject"]["properties"] = json!({"is_support": false});
    assert!(!server.decide(&not_support).await);
}

#[tokio::test]
async fn data_browser_shows_each_user_their_own_schemas() {
    let server = Server::start();
    let mut docs = pack_entities("data_browser");
    server.put_entities(&docs).await;
    let listing = |user: &str| {
        json!({
            "subject": {"type": "User", "id": user},
            "action": {"name": "browse_schema"},
            "evaluations": [
                {"resource": {"type": "Schema", "id": "s_public"}},
                {"resource": {"type": "Schema", "id": "s_finance"}}
            ]
        })
    };
    let visible = |answer: Value| -> Vec<bool> {
        answer["evaluations"].as_array().unwrap().iter().map(|e| e["decision"].as_bool().unwrap()).collect()
    };
    assert_eq!(visible(server.evaluations(&listing("vera")).await), [true, false]);
    assert_eq!(visible(server.evaluations(&listing("fiona")).await), [true, true]);
    assert_eq!(visible(server.evaluations(&listing("nora")).await), [false, false]);
    // Roles are case-sensitive: `public` is not `PUBLIC`.
    assert_eq!(visible(server.evaluations(&listing("lena")).await), [false, false]);
    // Asking for vera again after fiona: no one else's listing leaks.
    assert_eq!(visible(server.evaluations(&listing("vera")).await), [true, false]);

    // Granting vera FINANCE_ADMIN in the store changes her listing only.
    find(&mut docs, "vera")["attrs"]["warehouse_roles"] = json!(["PUBLIC", "FINANCE_ADMIN"]);
    server.put_entities(&docs).await;
    assert_eq!(visible(server.evaluations(&listing("vera")).await), [true, true]);
    assert_eq!(visible(server.evaluations(&listing("nora")).await), [false, false]);
    // A schema's grants decide too: drop PUBLIC from s_public.
    find(&mut docs, "s_public")["attrs"]["granted_roles"] = json!(["ANALYST"]);
    server.put_entities(&docs).await;
    assert_eq!(visible(server.evaluations(&listing("fiona")).await), [false, true]);
}

/// Removing any single policy of the pack makes at least one policy test
/// fail: every policy is pinned by a case.
#[test]
fn deleting_any_one_policy_fails_a_case() {
    let pack = crate::server::pack_dir();
    let mut deleted = Vec::new();
    let mut survivors = Vec::new();
    for entry in std::fs::read_dir(&pack).expect("read pack") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "cedar") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read policy file");
        let starts: Vec<usize> = text.match_indices("@id(\"").map(|(i, _)| i).collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            let body = &text[start..end];
            let id = body["@id(\"".len()..].split('"').next().expect("policy id").to_owned();
            let statement_end = body.find(";\n").expect("policy ends with `;`") + 2;
            let mutated = format!("{}{}{}", &text[..start], &body[statement_end..], &text[end..]);
            let dir = tempfile::tempdir().expect("temp dir");
            crate::server::copy_dir(&pack, dir.path());
            std::fs::write(dir.path().join(path.file_name().expect("name")), mutated).expect("write");
            let out = std::process::Command::new(crate::server::warrant_bin())
                .arg("test")
                .arg(dir.path())
                .output()
                .expect("run warrant test");
            if out.status.success() {
                survivors.push(id.clone());
            }
            deleted.push(id);
        }
    }
    assert!(deleted.len() >= 38, "only {} policies found", deleted.len());
    assert!(survivors.is_empty(), "no case fails without these policies: {survivors:?}");
}
