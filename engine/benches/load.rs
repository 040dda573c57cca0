//! What loading a bundle costs (parse, strict validation, the lints of
//! `bundle/lint.rs`, per-action slicing, entities), for the pack and for the
//! generated workspace at 22, 1,000 and 5,000 policies: the time a reload or
//! an upload holds before the swap, and `warrant check`'s.
//!
//! `cargo bench -p warrant-engine --bench load`
//!
//! Output, one line per bundle: `bundle-load <name> policies=N p50_ms=… min_ms=…`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use std::collections::BTreeMap;
use std::time::Instant;

use warrant_engine::{Bundle, BundleSource};

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use fixture::generated;

/// Loads of each bundle; they alternate, so drift hits all alike.
const ROUNDS: usize = 15;

fn pack() -> BundleSource {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    BundleSource::read_dir(&dir).unwrap()
}

fn generated(count: usize) -> BundleSource {
    let files = BTreeMap::from([
        ("schema.cedarschema".to_owned(), generated::SCHEMA.to_owned()),
        ("policies.cedar".to_owned(), generated::policies(count)),
    ]);
    BundleSource::from_files(files).unwrap()
}

fn main() {
    let bundles: Vec<(String, BundleSource)> = vec![
        ("pack".into(), pack()),
        ("generated-22".into(), generated(22)),
        ("generated-1000".into(), generated(1_000)),
        ("generated-5000".into(), generated(5_000)),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); bundles.len()];
    let mut counts = vec![0; bundles.len()];
    for _ in 0..ROUNDS {
        for (i, (_, source)) in bundles.iter().enumerate() {
            let source = source.clone();
            let started = Instant::now();
            let bundle = Bundle::load(source).unwrap();
            times[i].push(started.elapsed().as_secs_f64() * 1e3);
            counts[i] = bundle.policy_count();
        }
    }
    for (i, (name, _)) in bundles.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        println!("bundle-load {name} policies={} p50_ms={:.1} min_ms={:.1}", counts[i], t[t.len() / 2], t[0]);
    }
}
