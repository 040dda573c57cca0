//! Handing out a grant's access token, and refreshing it so that refreshes
//! never race (docs/vault.md#refresh-that-never-races).
//!
//! A valid token is read and opened, nothing written. One that expires
//! within the provider's skew is refreshed by one caller at a time: in this
//! process the grant's lock (`Vault::lock_of`), across instances the
//! store's lease (an advisory lock on PostgreSQL). Whoever gets them reads
//! the grant again, so a caller that waited finds the winner's token and
//! sends nothing. Before the refresh is sent its start is stored; the
//! rotated tokens are stored, with the `token.refreshed` record, before
//! anyone is answered.

use serde_json::json;
use warrant_engine::Timestamp;
use zeroize::Zeroizing;

use super::envelope::Field;
use super::error::VaultError;
use super::open::{Backing, DEFAULT_ACCESS_TTL, Vault, after, seal_tokens};
use super::provider::ProviderError;
use crate::audit::{Event, Kind};
use crate::store::{Grant, GrantStatus, GrantWrite};
use crate::tokens::{TokenChange, TokenEventKind};

/// An access token handed out, and until when it works.
pub struct Revealed {
    pub access_token: Zeroizing<String>,
    pub expires_at: Timestamp,
    /// Whether this call refreshed it.
    pub refreshed: bool,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revealed").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

impl Vault {
    /// Whether a token of `connection` renewed at `renewed_at` and expiring
    /// at `expires_at` is due for a refresh at `now` (within its skew:
    /// [`skew_for`]). `false` for a connection the vault does not serve.
    pub fn due(&self, connection: &str, renewed_at: Timestamp, expires_at: Timestamp, now: Timestamp) -> bool {
        self.provider_of(connection)
            .is_ok_and(|(_, p)| expires_at <= after(now, skew_for(p.refresh_skew(), renewed_at, expires_at)))
    }

    /// Grant `id`'s access token for `actor`, refreshed first when it
    /// expires within its provider's skew.
    pub async fn reveal(&self, b: Backing<'_>, id: &str, actor: &str) -> Result<Revealed, VaultError> {
        let grant = b.store.grant(id).await?.ok_or_else(|| VaultError::UnknownGrant(id.to_owned()))?;
        if let Some(token) = self.usable(&grant, Timestamp::now())? {
            return Ok(token);
        }
        self.refresh(b, id, actor, false).await
    }

    /// Refreshes grant `id` unless (once this caller holds its lock and
    /// lease) its token is fresh; `force`: even then (the refresher, for a
    /// refresh interrupted by a crash).
    pub(crate) async fn refresh(
        &self,
        b: Backing<'_>,
        id: &str,
        actor: &str,
        force: bool,
    ) -> Result<Revealed, VaultError> {
        let lock = self.lock_of(id);
        let _held = lock.lock().await;
        let _lease = b.store.grant_lease(id).await?;
        let leased = std::time::Instant::now();
        let grant = b.store.grant(id).await?.ok_or_else(|| VaultError::UnknownGrant(id.to_owned()))?;
        let now = Timestamp::now();
        if !(force && grant.refresh_started_at.is_some())
            && let Some(token) = self.usable(&grant, now)?
        {
            return Ok(token);
        }
        if let Some(wait) = self.backoff.wait(id) {
            return Err(VaultError::Unavailable(format!(
                "the last refresh failed; next attempt in {} s",
                wait.as_secs() + 1
            )));
        }
        let (_, provider) = self.provider_of(&grant.connection)?;
        let key = self.data_key(&grant)?;
        let Some(sealed) = &grant.refresh_token else {
            return Err(reauth(&grant, "the access token expired and the provider gave no refresh token"));
        };
        let refresh_token = key.open(id, Field::Refresh, sealed)?;
        // The start, durable before the provider hears of it: after a crash
        // the refresher finds it and refreshes again.
        let mut started = grant.clone();
        started.refresh_started_at = Some(now);
        started.version = grant.version + 1;
        b.audit
            .write_grant(GrantWrite { grant: started.clone(), expected: Some(grant.version) }, Vec::new(), |_| None)
            .await?;
        let asked = std::time::Instant::now();
        let answer = provider.refresh(&refresh_token).await;
        crate::metrics::METRICS.vault_provider_seconds.observe(asked.elapsed());
        // Observed once the outcome is stored, or the attempt given up.
        let _timed = Timed(leased);
        let now = Timestamp::now();
        let mut next = started.clone();
        next.refresh_started_at = None;
        next.updated_at = now;
        next.version = started.version + 1;
        let write = |next: &Grant| GrantWrite { grant: next.clone(), expected: Some(started.version) };
        let mut details = serde_json::Map::new();
        details.insert("provider".into(), json!(grant.provider));
        match answer {
            Ok(tokens) => {
                self.backoff.succeeded(id);
                refreshed("refreshed");
                let rotated = tokens.refresh_token.is_some();
                let expires_at = after(now, tokens.expires_in.unwrap_or(DEFAULT_ACCESS_TTL));
                let new_refresh = match &tokens.refresh_token {
                    Some(r) => Some(r.clone()),
                    None => Some(refresh_token.clone()),
                };
                let (access, refresh) =
                    seal_tokens(&key, id, &tokens.access_token, new_refresh.as_deref().map(|r| r.as_str()))?;
                next.access_token = access;
                next.refresh_token = refresh;
                next.access_expires_at = expires_at;
                if let Some(scopes) = &tokens.scopes {
                    next.scopes = scopes.join(" ");
                }
                details.insert("rotation".into(), json!(if rotated { "rotated" } else { "kept" }));
                // The provider has rotated: these tokens are now the only
                // ones that work. A failed store is tried again (it is
                // atomic: nothing of a failed attempt was kept) before
                // giving up, which would leave the grant to `invalid_grant`.
                let mut attempt = 0;
                loop {
                    let change = change_of(&grant, TokenEventKind::Refreshed, Some(expires_at));
                    match self.commit(b, write(&next), change, actor, details.clone()).await {
                        Ok(_) => break,
                        Err(VaultError::Audit(e)) if attempt < 3 => {
                            attempt += 1;
                            tracing::warn!(grant = %id, error = %e, attempt, "storing a refreshed grant failed; trying again");
                            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(Revealed { access_token: tokens.access_token, expires_at, refreshed: true })
            }
            Err(ProviderError::InvalidGrant(description)) => {
                self.backoff.succeeded(id);
                refreshed("reauth_required");
                let reason = match &description {
                    Some(d) => format!("invalid_grant: {d}"),
                    None => "invalid_grant".to_owned(),
                };
                next.status = GrantStatus::ReauthRequired;
                next.reason = Some(reason.clone());
                details.insert("grant".into(), json!("reauth_required"));
                details.insert("provider_answer".into(), json!(reason));
                let change = change_of(&grant, TokenEventKind::Expired, None);
                self.commit(b, write(&next), change, actor, details).await?;
                Err(reauth(&next, &reason))
            }
            Err(e) => {
                // Nothing is known to have changed at the provider: the
                // start stays stored, so the refresher tries again.
                let wait = self.backoff.failed(id);
                let outcome = if matches!(e, ProviderError::Transient(_)) { "transient" } else { "refused" };
                refreshed(outcome);
                tracing::warn!(grant = %id, provider = %grant.provider, error = %e, retry_in_s = wait.as_secs(), "vault refresh failed");
                // Audited with the provider's answer (its classification,
                // never a token). Bounded: the backoff keeps a grant from
                // being tried, and so recorded, more than once a second.
                let mut event = Event::new(Kind::VaultRefreshFailed, actor);
                event.token_id = Some(grant.id.clone());
                event.token_owner = Some(grant.owner.clone());
                event.connection = Some(grant.connection.clone());
                event.details = details;
                event.details.insert("outcome".into(), json!(outcome));
                event.details.insert("provider_answer".into(), json!(answer_of(&e)));
                event.details.insert("retry_in_s".into(), json!(wait.as_secs()));
                if let Err(audit) = b.audit.append(event).await {
                    tracing::error!(grant = %id, error = %audit, "a failed vault refresh could not be recorded");
                }
                Err(VaultError::from(e))
            }
        }
    }

    /// The grant's access token if it can be handed out as it is at `now`
    /// (`None`: it needs a refresh first), or why the grant cannot serve.
    fn usable(&self, grant: &Grant, now: Timestamp) -> Result<Option<Revealed>, VaultError> {
        match grant.status {
            GrantStatus::Revoked => return Err(VaultError::Revoked(grant.id.clone())),
            GrantStatus::ReauthRequired => {
                return Err(reauth(grant, grant.reason.as_deref().unwrap_or("reauth_required")));
            }
            GrantStatus::Active => {}
        }
        let (_, provider) = self.provider_of(&grant.connection)?;
        let skew = skew_for(provider.refresh_skew(), grant.updated_at, grant.access_expires_at);
        let fresh = grant.access_expires_at > after(now, skew);
        let last_resort = grant.refresh_token.is_none() && grant.access_expires_at > now;
        if !(fresh || last_resort) {
            return Ok(None);
        }
        let token = self.data_key(grant)?.open(&grant.id, Field::Access, &grant.access_token)?;
        Ok(Some(Revealed { access_token: token, expires_at: grant.access_expires_at, refreshed: false }))
    }
}

/// How long before its expiry a token renewed at `renewed_at` is
/// refreshed: the provider's `skew`, but never more than half the token's
/// life, so a provider whose tokens live shorter than the skew is not asked
/// for a new one on every use (nor twice in one resolution).
pub(super) fn skew_for(skew: std::time::Duration, renewed_at: Timestamp, expires_at: Timestamp) -> std::time::Duration {
    let life = expires_at.datetime().signed_duration_since(renewed_at.datetime()).to_std().unwrap_or_default();
    skew.min(life / 2)
}

/// What a record says of a provider's failed answer: its classification
/// and the provider's error text, but not a parser's message, which may
/// quote what the provider sent.
fn answer_of(e: &ProviderError) -> String {
    match e {
        ProviderError::Malformed(_) => "the provider's answer does not parse".to_owned(),
        other => other.to_string(),
    }
}

/// Observes a refresh's duration when dropped.
struct Timed(std::time::Instant);

impl Drop for Timed {
    fn drop(&mut self) {
        crate::metrics::METRICS.vault_refresh_seconds.observe(self.0.elapsed());
    }
}

fn refreshed(outcome: &'static str) {
    crate::metrics::METRICS.vault_refreshes.get_or_create(&crate::metrics::OutcomeLabels { outcome }).inc();
}

fn reauth(grant: &Grant, reason: &str) -> VaultError {
    VaultError::ReauthRequired { id: grant.id.clone(), reason: reason.to_owned() }
}

fn change_of(grant: &Grant, kind: TokenEventKind, expires_at: Option<Timestamp>) -> TokenChange {
    TokenChange {
        kind,
        token_id: grant.id.clone(),
        owner: grant.owner.clone(),
        connection: grant.connection.clone(),
        role: None,
        expires_at,
        issued_at: None,
    }
}

/// Most grants the background refresher takes up per pass, and refreshes
/// at once.
const PASS_LIMIT: u32 = 256;
const AT_ONCE: usize = 4;

/// The background refresher: every `every` (jittered by up to a quarter),
/// refreshes the active grants whose access token expires before the next
/// pass is due (within their provider's skew), at most [`AT_ONCE`] at a
/// time, and those whose refresh a crash interrupted. Runs until the
/// process ends; what it did is in `warrant_vault_refreshes`.
pub async fn refresh_loop(
    vault: std::sync::Arc<Vault>,
    store: crate::store::Store,
    audit: crate::audit::AuditLog,
    every: std::time::Duration,
) {
    loop {
        let mut byte = [0u8; 1];
        let jitter =
            getrandom::fill(&mut byte).map_or(std::time::Duration::ZERO, |()| every / 4 * u32::from(byte[0]) / 255);
        tokio::time::sleep(every + jitter).await;
        let horizon = after(Timestamp::now(), vault.longest_skew() + every * 2);
        let due = match store.grants_to_refresh(horizon, PASS_LIMIT).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "vault refresher cannot list grants");
                continue;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut refreshed = 0u32;
        for grant in due {
            while tasks.len() >= AT_ONCE {
                if let Some(Ok(true)) = tasks.join_next().await {
                    refreshed += 1;
                }
            }
            let (vault, store, audit) = (std::sync::Arc::clone(&vault), store.clone(), audit.clone());
            tasks.spawn(async move {
                let b = Backing { store: &store, audit: &audit };
                let interrupted = grant.refresh_started_at.is_some();
                match vault.refresh(b, &grant.id, "vault:refresher", interrupted).await {
                    Ok(r) => r.refreshed,
                    Err(e) => {
                        tracing::warn!(grant = %grant.id, error = %e, "vault refresher: not refreshed");
                        false
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok(true) = done {
                refreshed += 1;
            }
        }
        if refreshed > 0 {
            tracing::info!(refreshed, "vault refresher pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skew_is_never_more_than_half_a_tokens_life() {
        let t0 = Timestamp::parse("2026-12-07T00:00:00Z").unwrap();
        let at = |s: i64| Timestamp::from_unix_seconds(t0.unix_seconds() + s).unwrap();
        let minute = std::time::Duration::from_secs(60);
        assert_eq!(skew_for(minute, t0, at(3600)), minute, "an hour's token: the configured skew");
        assert_eq!(skew_for(minute * 60, t0, at(60)), minute / 2, "a minute's token: half its life");
        assert_eq!(skew_for(minute, at(10), t0), std::time::Duration::ZERO, "expired before it was renewed");
    }
}
