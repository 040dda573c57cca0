//! In-process decision rate on two threads, warrant and raw cedar-policy, on
//! the generated workspace (`fixture/generated.rs`) at 22 and 1,000
//! policies: the reference `tests/load/pinned` holds the HTTP rate against.
//! Uses mimalloc, as the `warrant` binary does.
//!
//! `cargo bench -p warrant-engine --bench throughput [-- --seconds N]`
//! `cargo bench -p warrant-engine --bench throughput -- --write-bundle DIR COUNT`
//!   writes the bundle of COUNT policies (with its entities) into DIR.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use warrant_engine::Timestamp;

#[allow(dead_code, reason = "each bench uses a part of the shared fixture")]
mod fixture;

use fixture::generated::{self, RawCedar};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const THREADS: usize = 2;

/// Decisions per second of `decide` over the request mix on [`THREADS`]
/// threads, each starting at a different request, for `seconds`.
fn rate(seconds: f64, decide: impl Fn(&str, &str) -> bool + Sync) -> f64 {
    let requests = generated::requests();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (requests, stop, decide) = (&requests, &stop, &decide);
                s.spawn(move || {
                    let mut n = 0u64;
                    for (user, project) in requests.iter().cycle().skip(t * 97) {
                        std::hint::black_box(decide(user, project));
                        n += 1;
                        if n.is_multiple_of(256) && stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write-bundle") {
        let dir = std::path::PathBuf::from(&args[i + 1]);
        generated::write_bundle(&dir, args[i + 2].parse().unwrap());
        return;
    }
    let seconds = args.iter().position(|a| a == "--seconds").map_or(3.0, |i| args[i + 1].parse().unwrap());
    let now = Timestamp::now();
    for count in [22, 1_000] {
        let (bundle, store) = generated::bundle(count);
        let raw = RawCedar::new(count);
        let cedar = rate(seconds, |u, p| raw.decide(u, p));
        let ours = rate(seconds, |u, p| bundle.decide(&store, &generated::query(u, p), now).unwrap().allowed);
        println!(
            "{count:>5} policies, in-process, {THREADS} threads: raw cedar {cedar:>9.0} decisions/s | warrant {ours:>9.0} decisions/s"
        );
    }
}
