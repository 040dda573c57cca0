//! Group commit for token events: one task takes every change waiting and
//! applies them in one store transaction, in arrival order, so concurrent
//! events share a commit (one fsync) instead of paying one each. Callers
//! are answered once their change is durable.

use tokio::sync::{mpsc, oneshot};

use super::{TokenChange, TokenConflict, TokenState, apply};
use crate::store::{Store, StoreError, TokenUpdate};

/// Most changes applied in one transaction.
const MAX_BATCH: usize = 512;
/// Changes waiting for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

/// What a change came to: the token's state after it (`None`: the event
/// changes no state), or the conflict that refused it.
pub type Applied = Result<Option<TokenState>, TokenConflict>;

/// The token store could not apply a change (nothing of its batch is stored).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the token store could not apply the event: {0}")]
pub struct WriteError(String);

struct Pending {
    change: TokenChange,
    reply: oneshot::Sender<Result<Applied, WriteError>>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenWriter {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("token_id", &self.change.token_id).finish_non_exhaustive()
    }
}

impl TokenWriter {
    /// Starts the writer over `store`.
    pub fn start(store: Store) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(rx, store));
        Self { queue }
    }

    /// Applies `change` to the stored token; returns once it is durable.
    pub async fn apply(&self, change: TokenChange) -> Result<Applied, WriteError> {
        let stopped = || WriteError("the writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { change, reply }).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write_loop(mut rx: mpsc::Receiver<Pending>, store: Store) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (changes, replies): (Vec<TokenChange>, Vec<_>) = batch.into_iter().map(|p| (p.change, p.reply)).unzip();
        let updates = changes
            .into_iter()
            .map(|change| {
                let now = now.as_str();
                TokenUpdate::new(change.token_id.clone(), move |before: Option<&TokenState>| {
                    apply(before, &change, now)
                })
            })
            .collect();
        match store.update_tokens(updates).await {
            Ok(outcomes) => {
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => fail(replies, &e),
        }
    }
}

/// Nothing of the batch is stored: every caller gets the error (a 500).
fn fail(replies: Vec<oneshot::Sender<Result<Applied, WriteError>>>, error: &StoreError) {
    tracing::error!(error = %error, "token write failed");
    for reply in replies {
        let _ = reply.send(Err(WriteError("storage failure".into())));
    }
}
