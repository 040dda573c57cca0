//! Decision latency as the policy count grows: generated per-user grants
//! (`permit (principal == User::"uN", action == Action::"view_notebook",
//! resource == Project::"pM") when { … }`) plus a few unscoped forbids, at 22
//! and 1,000 policies, against ~1,000 users and 100 projects. Warrant's
//! `Bundle::decide` side by side with raw cedar-policy `is_authorized` over
//! the whole set, on the same requests.
//!
//! `cargo bench -p warrant-engine --bench scale`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use std::collections::BTreeMap;
use std::time::Instant;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request, Schema};
use chrono::Utc;
use serde_json::{Value, json};
use warrant_engine::{Bundle, BundleSource, EntityRef, Query};

const USERS: usize = 1_000;
const PROJECTS: usize = 100;
const SAMPLES: usize = 20_000;

const SCHEMA: &str = r#"namespace Analytics {
  entity Group in [Group];
  entity User in [Group] = { level: Long };
  entity Project = { owner: User, archived: Bool };
  action view_notebook, edit_notebook appliesTo { principal: User, resource: Project, context: { now: datetime } };
}"#;

fn policies(count: usize) -> String {
    let mut text = String::new();
    // Unscoped rules every request meets.
    text.push_str(
        "@id(\"archived\") @reason(\"archived\")\nforbid (principal, action, resource) when { resource.archived };\n",
    );
    text.push_str("@id(\"owner\") permit (principal, action, resource) when { resource.owner == principal };\n");
    for i in 0..count.saturating_sub(2) {
        let (user, project) = ((i * 7) % USERS, i % PROJECTS);
        text.push_str(&format!(
            "@id(\"grant{i}\") permit (principal == Analytics::User::\"u{user}\", action == Analytics::Action::\"view_notebook\", resource == Analytics::Project::\"p{project}\") when {{ principal.level >= 1 }};\n"
        ));
    }
    text
}

fn entities() -> Vec<Value> {
    let mut docs = Vec::new();
    for u in 0..USERS {
        docs.push(json!({"uid": {"type": "Analytics::User", "id": format!("u{u}")}, "attrs": {"level": (u % 3) as i64}, "parents": []}));
    }
    for p in 0..PROJECTS {
        docs.push(json!({"uid": {"type": "Analytics::Project", "id": format!("p{p}")},
                         "attrs": {"owner": {"__entity": {"type": "Analytics::User", "id": format!("u{}", p * 3)}}, "archived": p % 10 == 9},
                         "parents": []}));
    }
    docs
}

fn pct(times: &mut [u64], p: f64) -> f64 {
    times.sort_unstable();
    times[((times.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

fn main() {
    let schema = Schema::from_cedarschema_str(SCHEMA).unwrap().0;
    let docs = entities();
    let raw_entities = Entities::from_json_value(Value::Array(docs.clone()), Some(&schema)).unwrap();
    let now = Utc::now();
    // Requests: users that hold a grant on the project, and users that do not.
    // Requests: half of them hit a grant of the 1,000-policy set (and of
    // the 22-policy set when i < 20), half pair a user with another project.
    let requests: Vec<(String, String)> = (0..512)
        .map(|i| {
            let project = if i % 2 == 0 { i % PROJECTS } else { (i * 13 + 1) % PROJECTS };
            (format!("u{}", (i * 7) % USERS), format!("p{project}"))
        })
        .collect();
    let mut p50s = Vec::new();
    for count in [22, 1_000] {
        let text = policies(count);
        let files = BTreeMap::from([
            ("schema.cedarschema".to_owned(), SCHEMA.to_owned()),
            ("policies.cedar".to_owned(), text.clone()),
        ]);
        let bundle = Bundle::load(BundleSource::from_files(files).unwrap()).unwrap();
        let store = bundle.entity_set(docs.clone()).unwrap();
        let raw: PolicySet = text.parse().unwrap();
        let action: EntityUid = r#"Analytics::Action::"view_notebook""#.parse().unwrap();

        let query_of = |user: &str, project: &str| Query {
            principal: EntityRef { type_name: "User".into(), id: user.to_owned(), properties: None },
            action: "view_notebook".into(),
            resource: EntityRef { type_name: "Project".into(), id: project.to_owned(), properties: None },
            context: serde_json::Map::new(),
            entities: Vec::new(),
        };
        // Raw Cedar: the request built from strings, the whole set evaluated.
        let raw_decide = |user: &str, project: &str| {
            let principal: EntityUid = format!("Analytics::User::\"{user}\"").parse().unwrap();
            let resource: EntityUid = format!("Analytics::Project::\"{project}\"").parse().unwrap();
            let now = json!({"now": {"__extn": {"fn": "datetime", "arg": "2026-06-01T00:00:00Z"}}});
            let context = Context::from_json_value(now, Some((&schema, &action))).unwrap();
            let request = Request::new(principal, action.clone(), resource, context, Some(&schema)).unwrap();
            Authorizer::new().is_authorized(&request, &raw, &raw_entities).decision() == cedar_policy::Decision::Allow
        };
        // Same answers first; then each side timed in its own loop, so one
        // does not run in the other's evicted caches.
        let mut allowed = 0;
        for (user, project) in &requests {
            let ours = bundle.decide(&store, &query_of(user, project), now).unwrap().allowed;
            assert_eq!(ours, raw_decide(user, project), "{user} {project}");
            allowed += usize::from(ours);
        }
        let mut ours = Vec::with_capacity(SAMPLES);
        for (user, project) in requests.iter().cycle().take(SAMPLES) {
            let query = query_of(user, project);
            let t = Instant::now();
            std::hint::black_box(bundle.decide(&store, &query, now).unwrap());
            ours.push(t.elapsed().as_nanos() as u64);
        }
        let mut cedar = Vec::with_capacity(SAMPLES);
        for (user, project) in requests.iter().cycle().take(SAMPLES) {
            let t = Instant::now();
            std::hint::black_box(raw_decide(user, project));
            cedar.push(t.elapsed().as_nanos() as u64);
        }
        let (o50, o99, c50, c99) =
            (pct(&mut ours, 0.5), pct(&mut ours, 0.99), pct(&mut cedar, 0.5), pct(&mut cedar, 0.99));
        println!(
            "{count:>5} policies: warrant p50 {o50:>7.2} µs p99 {o99:>7.2} µs | raw cedar p50 {c50:>8.2} µs p99 {c99:>8.2} µs | ratio {:.2} ({allowed} of {} distinct requests allowed)",
            o50 / c50,
            requests.len()
        );
        p50s.push(o50);
    }
    println!("warrant 1,000-policy p50 / 22-policy p50: {:.2}", p50s[1] / p50s[0]);
}
