//! Making, importing and revoking grants (docs/vault.md#getting-and-losing-a-grant).
//!
//! A grant is also a token of the token store (its id is the token id), so
//! every change here applies the matching token event and records it, in
//! the audit writer's transaction with the grant's row: `token.issued` when
//! a grant is made, `token.revoked` when it ends.

use serde_json::json;
use sha2::{Digest as _, Sha256};
use warrant_engine::Timestamp;
use zeroize::Zeroizing;

use super::envelope::{DataKey, Field};
use super::error::VaultError;
use super::open::{Backing, DEFAULT_ACCESS_TTL, FLOW_TTL, MAX_PENDING_FLOWS, Vault, after, seal_tokens};
use crate::audit::{Event, Kind};
use crate::store::grant_flows::GrantFlow;
use crate::store::{Grant, GrantStatus, GrantWrite, TokenUpdate};
use crate::tokens::{self, Applied, TokenChange, TokenEventKind};

/// A started authorization: where to send the user.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    /// The provider's authorization URL (carries `state` and the PKCE
    /// challenge; both public).
    pub authorization_url: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// A grant made or changed: what may be shown (never a token).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Connected {
    pub grant_id: String,
    pub connection: String,
    pub owner: String,
    pub status: GrantStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Granted scopes, space-separated.
    pub scopes: String,
    #[schema(value_type = String, format = DateTime)]
    pub access_expires_at: Timestamp,
    /// The `seq` of the audit record of the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Connected {
    fn of(grant: &Grant, seq: Option<u64>) -> Self {
        Self {
            grant_id: grant.id.clone(),
            connection: grant.connection.clone(),
            owner: grant.owner.clone(),
            status: grant.status,
            reason: grant.reason.clone(),
            scopes: grant.scopes.clone(),
            access_expires_at: grant.access_expires_at,
            seq,
        }
    }
}

/// A grant's tokens as they arrive (from the provider, or an import).
pub struct NewTokens {
    pub access: Zeroizing<String>,
    pub refresh: Option<Zeroizing<String>>,
    pub expires_at: Timestamp,
    pub scopes: String,
}

/// Never the tokens.
impl std::fmt::Debug for NewTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTokens").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// The lowercase hex SHA-256 of `state`: all the database keeps of it.
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// A new grant id: 128 random bits.
fn new_grant_id() -> Result<String, VaultError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| VaultError::Sealed(format!("no randomness: {e}")))?;
    Ok(format!("grant_{}", hex::encode(bytes)))
}

impl Vault {
    /// Starts an authorization for `owner` on `connection`: a pending flow
    /// (its `state` kept as a hash, its PKCE verifier sealed), and the
    /// provider's URL to send the user to.
    pub async fn start(&self, b: Backing<'_>, connection: &str, owner: &str) -> Result<Started, VaultError> {
        let (_, provider) = self.provider_of(connection)?;
        let authorization = provider.authorize();
        let hash = state_hash(&authorization.state);
        let (kek_id, verifier) = self.keys().seal_verifier(&hash, &authorization.pkce_verifier)?;
        let now = Timestamp::now();
        let expires_at = after(now, FLOW_TTL);
        let flow = GrantFlow {
            state_hash: hash,
            connection: connection.to_owned(),
            owner: owner.to_owned(),
            kek_id,
            verifier,
            created_at: now,
            expires_at,
        };
        if !b.store.start_grant_flow(&flow, MAX_PENDING_FLOWS).await? {
            return Err(VaultError::TooManyFlows(owner.to_owned(), MAX_PENDING_FLOWS));
        }
        Ok(Started { authorization_url: authorization.url.to_string(), expires_at })
    }

    /// The provider sent the user back with `code` for `state`: consumes the
    /// pending flow (once), exchanges the code, and stores the grant.
    pub async fn callback(&self, b: Backing<'_>, state: &str, code: &str) -> Result<Connected, VaultError> {
        let now = Timestamp::now();
        let flow = b.store.take_grant_flow(&state_hash(state), now).await?.ok_or(VaultError::UnknownState)?;
        let verifier = self.keys().open_verifier(&flow.state_hash, &flow.kek_id, &flow.verifier)?;
        let (_, provider) = self.provider_of(&flow.connection)?;
        let tokens = provider.exchange(code, &verifier).await?;
        let now = Timestamp::now();
        let new = NewTokens {
            expires_at: after(now, tokens.expires_in.unwrap_or(DEFAULT_ACCESS_TTL)),
            scopes: tokens.scopes.as_ref().map_or_else(|| provider.scopes().join(" "), |s| s.join(" ")),
            access: tokens.access_token,
            refresh: tokens.refresh_token,
        };
        self.store_new(b, &flow.connection, &flow.owner, new, &flow.owner, "authorization_code").await
    }

    /// Forgets the pending authorization of `state` (the user refused at
    /// the provider), so the `state` cannot be used again.
    pub async fn abandon(&self, b: Backing<'_>, state: &str) -> Result<(), VaultError> {
        b.store.take_grant_flow(&state_hash(state), Timestamp::now()).await?;
        Ok(())
    }

    /// Grant `id` as it stands.
    pub async fn read(&self, b: Backing<'_>, id: &str) -> Result<Connected, VaultError> {
        let grant = b.store.grant(id).await?.ok_or_else(|| VaultError::UnknownGrant(id.to_owned()))?;
        Ok(Connected::of(&grant, None))
    }

    /// Stores a grant a platform already holds, for `owner` on `connection`.
    pub async fn import(
        &self,
        b: Backing<'_>,
        connection: &str,
        owner: &str,
        tokens: NewTokens,
        actor: &str,
    ) -> Result<Connected, VaultError> {
        self.store_new(b, connection, owner, tokens, actor, "import").await
    }

    /// A new grant, sealed under a new data key: its row, its token's
    /// `token.issued` and the record, in one commit.
    async fn store_new(
        &self,
        b: Backing<'_>,
        connection: &str,
        owner: &str,
        tokens: NewTokens,
        actor: &str,
        how: &'static str,
    ) -> Result<Connected, VaultError> {
        let (config, provider) = self.provider_of(connection)?;
        let id = new_grant_id()?;
        let key = DataKey::generate()?;
        let wrapped = self.keys().wrap(&id, &key)?;
        let (access, refresh) = seal_tokens(&key, &id, &tokens.access, tokens.refresh.as_deref().map(|r| r.as_str()))?;
        let now = Timestamp::now();
        let grant = Grant {
            id: id.clone(),
            connection: connection.to_owned(),
            owner: owner.to_owned(),
            provider: provider.name().to_owned(),
            status: GrantStatus::Active,
            reason: None,
            scopes: tokens.scopes,
            kek_id: wrapped.kek_id,
            data_key: wrapped.bytes,
            access_token: access,
            access_expires_at: tokens.expires_at,
            refresh_token: refresh,
            refresh_started_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let change = TokenChange {
            kind: TokenEventKind::Issued,
            token_id: id.clone(),
            owner: owner.to_owned(),
            connection: connection.to_owned(),
            role: Some(config.role.clone()),
            expires_at: Some(tokens.expires_at),
            issued_at: Some(now),
        };
        let mut details = serde_json::Map::new();
        details.insert("grant".into(), json!(how));
        details.insert("provider".into(), json!(grant.provider));
        details.insert("scopes".into(), json!(grant.scopes));
        details.insert("refreshable".into(), json!(grant.refresh_token.is_some()));
        let seq = self.commit(b, GrantWrite { grant: grant.clone(), expected: None }, change, actor, details).await?;
        Ok(Connected::of(&grant, seq))
    }

    /// Disconnects grant `id`: revokes it at the provider (RFC 7009), then
    /// here, whatever the provider answered (recorded with the change).
    pub async fn disconnect(&self, b: Backing<'_>, id: &str, actor: &str, why: &str) -> Result<Connected, VaultError> {
        // The refresh's lock and lease: a disconnect never interleaves with
        // a refresh of the same grant, here or on another instance.
        let lock = self.lock_of(id);
        let _held = lock.lock().await;
        let _lease = b.store.grant_lease(id).await?;
        let grant = b.store.grant(id).await?.ok_or_else(|| VaultError::UnknownGrant(id.to_owned()))?;
        if grant.status == GrantStatus::Revoked {
            return Ok(Connected::of(&grant, None));
        }
        let (_, provider) = self.provider_of(&grant.connection)?;
        let key = self.data_key(&grant)?;
        // The refresh token ends the whole grant at the provider; without
        // one, the access token is what can be revoked.
        let (token, field) = match &grant.refresh_token {
            Some(sealed) => (key.open(id, Field::Refresh, sealed)?, "refresh_token"),
            None => (key.open(id, Field::Access, &grant.access_token)?, "access_token"),
        };
        let at_provider = match provider.revoke(&token, field).await {
            Ok(()) => json!("revoked"),
            Err(e) => json!(format!("not revoked: {e}")),
        };
        let now = Timestamp::now();
        let mut next = grant.clone();
        next.status = GrantStatus::Revoked;
        next.reason = Some(why.to_owned());
        next.refresh_started_at = None;
        next.updated_at = now;
        next.version = grant.version + 1;
        let change = TokenChange {
            kind: TokenEventKind::Revoked,
            token_id: grant.id.clone(),
            owner: grant.owner.clone(),
            connection: grant.connection.clone(),
            role: None,
            expires_at: None,
            issued_at: None,
        };
        let mut details = serde_json::Map::new();
        details.insert("grant".into(), json!("revoked"));
        details.insert("reason".into(), json!(why));
        details.insert("provider".into(), json!(grant.provider));
        details.insert("at_provider".into(), at_provider);
        let write = GrantWrite { grant: next.clone(), expected: Some(grant.version) };
        let seq = self.commit(b, write, change, actor, details).await?;
        Ok(Connected::of(&next, seq))
    }

    /// A deprovisioned user's grants among `token_ids` (the tokens the
    /// deprovisioning revoked here), revoked at their providers and marked
    /// revoked. A grant the provider could not be told about stays revoked
    /// here (its `token.revoked` says so); failures are logged, not
    /// returned: the delivery itself is already applied.
    pub async fn deprovision(&self, b: Backing<'_>, token_ids: &[String], actor: &str) {
        for id in token_ids {
            match self.disconnect(b, id, actor, "deprovisioned").await {
                Ok(_) | Err(VaultError::UnknownGrant(_)) => {}
                Err(e) => tracing::error!(grant = %id, error = %e, "cannot revoke a deprovisioned user's grant"),
            }
        }
    }

    /// Writes `write` with its token change and the record of it, made by
    /// `actor` with `details`; the record's `seq`.
    pub(super) async fn commit(
        &self,
        b: Backing<'_>,
        write: GrantWrite,
        change: TokenChange,
        actor: &str,
        details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<u64>, VaultError> {
        let now = Timestamp::now();
        let kind = change.kind;
        let (token_id, owner, connection) = (change.token_id.clone(), change.owner.clone(), change.connection.clone());
        let update = TokenUpdate::new(change.token_id.clone(), move |before| tokens::apply(before, &change, now));
        let actor = actor.to_owned();
        let record = move |outcomes: &[Applied]| {
            let mut event = Event::new(Kind::from(kind), actor);
            event.token_id = Some(token_id);
            event.token_owner = Some(owner);
            event.connection = Some(connection);
            event.details = details;
            if let [Ok(Some(t))] = outcomes {
                event.details.insert("status".into(), json!(t.status));
                event.details.insert("expires_at".into(), json!(t.expires_at));
            }
            Some(event)
        };
        let recorded = b.audit.write_grant(write, vec![update], record).await?;
        Ok(recorded.appended.map(|a| a.seq))
    }
}
