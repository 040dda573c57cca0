//! Decision latency as the policy count grows: generated per-user grants
//! (`permit (principal == User::"uN", action == Action::"view_notebook",
//! resource == Project::"pM") when { … }`) plus a few unscoped forbids, at 22
//! and 1,000 policies, against ~1,000 users and 100 projects. Warrant's
//! `Bundle::decide` side by side with raw cedar-policy `is_authorized` over
//! the whole set, on the same requests.
//!
//! `cargo bench -p warrant-engine --bench scale`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use std::time::Instant;
use warrant_engine::Timestamp;

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use fixture::generated::{self, RawCedar};

const SAMPLES: usize = 20_000;

fn pct(times: &mut [u64], p: f64) -> f64 {
    times.sort_unstable();
    times[((times.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

fn main() {
    let now = Timestamp::now();
    let requests = generated::requests();
    let mut p50s = Vec::new();
    for count in [22, 1_000] {
        let (bundle, store) = generated::bundle(count);
        let raw = RawCedar::new(count);
        // Same answers first; then each side timed in its own loop, so one
        // does not run in the other's evicted caches.
        let mut allowed = 0;
        for (user, project) in &requests {
            let ours = bundle.decide(&store, &generated::query(user, project), now).unwrap().allowed;
            assert_eq!(ours, raw.decide(user, project), "{user} {project}");
            allowed += usize::from(ours);
        }
        let mut ours = Vec::with_capacity(SAMPLES);
        for (user, project) in requests.iter().cycle().take(SAMPLES) {
            let query = generated::query(user, project);
            let t = Instant::now();
            std::hint::black_box(bundle.decide(&store, &query, now).unwrap());
            ours.push(t.elapsed().as_nanos() as u64);
        }
        let mut cedar = Vec::with_capacity(SAMPLES);
        for (user, project) in requests.iter().cycle().take(SAMPLES) {
            let t = Instant::now();
            std::hint::black_box(raw.decide(user, project));
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
