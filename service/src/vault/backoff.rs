//! When a grant may be refreshed again after its provider failed
//! transiently: exponential, jittered, bounded, in memory (a restart
//! forgets it, which costs at most one early retry per grant).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest wait after the provider failed transiently.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When each grant may be refreshed again after transient failures.
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<String, (Instant, u32)>>);

impl Backoff {
    /// How long grant `id` must still wait, if at all.
    pub fn wait(&self, id: &str) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id).and_then(|(until, _)| until.checked_duration_since(Instant::now()))
    }

    /// A transient failure: waits 1 s, 2 s, 4 s … up to a minute, with up
    /// to a quarter more at random so retries from many grants spread out.
    pub fn failed(&self, id: &str) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            let now = Instant::now();
            map.retain(|_, (until, _)| *until > now);
        }
        let failures = map.get(id).map_or(0, |(_, n)| *n).saturating_add(1);
        let base = Duration::from_secs(1u64 << failures.min(6).saturating_sub(1)).min(MAX_BACKOFF);
        let mut byte = [0u8; 1];
        let jitter = getrandom::fill(&mut byte).map_or(Duration::ZERO, |()| base / 4 * u32::from(byte[0]) / 255);
        let wait = base + jitter;
        map.insert(id.to_owned(), (Instant::now() + wait, failures));
        wait
    }

    pub fn succeeded(&self, id: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}
