//! Policy impact over the pack at 10,000 users × 1,000 projects (issue
//! 25's dry-run target: within 2 s): one added permit, and one added
//! forbid, compared alone and as `PUT /v1/policies?dry_run=true` does it
//! (load the new bundle, reuse the entity set since the schema is the
//! same, compare).
//!
//! `cargo bench -p warrant-engine --bench impact`

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "benchmark setup fails loudly")]

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warrant_engine::{Bundle, BundleSource, Timestamp};

/// Lets a project's viewers edit it.
const VIEWERS_EDIT: &str = r#"@id("bench.viewers_edit")
permit (
  principal is Analytics::User,
  action == Analytics::Action::"edit_notebook",
  resource is Analytics::Project
)
when { resource.viewers.contains(principal) };
"#;

/// Takes every workspace admin's owner credentials away: a forbid with no
/// principal literal, so every user is looked at.
const NO_ADMIN_OWNER_CREDENTIALS: &str = r#"@id("bench.no_admin_owner_credentials")
forbid (
  principal is Analytics::User,
  action == Analytics::Action::"view_notebook",
  resource is Analytics::Project
)
when { principal.workspace_role == "admin" };
"#;

fn impact(c: &mut Criterion) {
    let before = fixture::pack();
    let docs = fixture::entity_docs(10_000);
    let entities = before.entity_set(docs.clone()).unwrap();
    assert_eq!(entities.ids_of_type("Analytics::User").len(), 10_000);
    assert_eq!(entities.ids_of_type("Analytics::Project").len(), 1_000);
    let mut group = c.benchmark_group("impact");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, text) in [("added_permit", VIEWERS_EDIT), ("added_forbid", NO_ADMIN_OWNER_CREDENTIALS)] {
        let mut files = before.source().to_files();
        files.insert("bench.cedar".into(), text.into());
        let source = BundleSource::from_files(files).unwrap();
        let after = Bundle::load(source.clone()).unwrap();
        let after_entities = after.entity_set(docs.clone()).unwrap();
        let now = Timestamp::now();
        let report = before.impact(&entities, &after, &after_entities, now, 10);
        eprintln!(
            "{name}: {} newly permitted, {} newly denied, {} pairs decided",
            report.newly_permitted, report.newly_denied, report.decided
        );
        assert!(report.newly_permitted + report.newly_denied > 0);
        group.bench_function(format!("{name}_10000_users_1000_projects"), |b| {
            b.iter(|| before.impact(&entities, &after, &after_entities, now, 10))
        });
        group.bench_function(format!("{name}_dry_run_10000_users_1000_projects"), |b| {
            b.iter(|| {
                let after = Bundle::load(source.clone()).unwrap();
                assert!(before.sees_same_entities(&after));
                before.impact(&entities, &after, &entities, now, 10)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, impact);
criterion_main!(benches);
