//! Decision latency percentiles on one thread (criterion reports means and
//! medians; p99 needs every sample). Prints one line per store size.
//!
//! `cargo bench -p warrant-engine --bench latency`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use std::time::Instant;
use warrant_engine::Timestamp;

const SAMPLES: usize = 200_000;

fn main() {
    let bundle = fixture::pack();
    let now = Timestamp::now();
    let mix = fixture::mix();
    println!("policies: {}", bundle.policy_count());
    for users in [100, 1_000, 5_000] {
        let entities = fixture::entities(&bundle, users);
        // Warm up caches and the allocator.
        for q in mix.iter().cycle().take(10_000) {
            bundle.decide(&entities, q, now).unwrap();
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        let started = Instant::now();
        for q in mix.iter().cycle().take(SAMPLES) {
            let t = Instant::now();
            let d = bundle.decide(&entities, q, now).unwrap();
            samples.push(t.elapsed().as_nanos() as u64);
            std::hint::black_box(d);
        }
        let total = started.elapsed();
        samples.sort_unstable();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
        println!(
            "entities {:>6}: p50 {:>6.1} µs  p90 {:>6.1} µs  p99 {:>6.1} µs  p99.9 {:>6.1} µs  ({:.0} decisions/s on 1 thread)",
            entities.len(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(0.999),
            SAMPLES as f64 / total.as_secs_f64()
        );
    }
}
