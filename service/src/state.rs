//! What requests read: the active bundle and the entity set built for it,
//! held together in one snapshot and swapped atomically.
//!
//! INVARIANT: a snapshot's entities were validated against its bundle's
//! schema. Changes (a new bundle, a new entity set) are serialised by
//! `write_lock`, validated, persisted, and only then published; a request
//! holds one snapshot from start to end, so a swap never fails a request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::Mutex;
use warrant_engine::impact::{Impact, Replay};
use warrant_engine::{Bundle, BundleError, BundleSource, EntitiesError, EntitySet, Timestamp, Undeclared, entities};

use crate::audit::{AuditLog, DecisionAudit, Event, Kind};
use crate::config::RequestOverrides;
use crate::keys::AuditKeys;
use crate::pack::Gaps;
use crate::rules::RuleHost;
use crate::store::{BundleOrigin, Store, StoreError, StoreVersions, StoredBundle, TimeWindow};
use crate::webhooks::Webhooks;

/// The active bundle and the entities decisions see.
#[derive(Debug)]
pub struct Snapshot {
    pub bundle: Arc<Bundle>,
    /// What `bundle`'s schema lacks of the service's contract with the
    /// pack, found when it loaded; credential resolution refuses to guess.
    pub pack: Gaps,
    pub entities: EntitySet,
    pub origin: BundleOrigin,
    pub activated_at: Timestamp,
    /// The store versions this snapshot reflects (see [`AppState::sync_from_store`]).
    pub versions: StoreVersions,
}

/// Why a change to policies or entities was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The stored entities do not fit the new bundle's schema.
    #[error("the stored entities do not conform to the new schema: {0}")]
    EntitiesVsSchema(EntitiesError),
    #[error(transparent)]
    Entities(EntitiesError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Audit(String),
    /// Computing the change's impact failed (a bug: the engine panicked).
    #[error("{0}")]
    Internal(String),
    /// The change widens access more than the caller allowed (`max_new_permits`).
    #[error("the change newly permits {} request(s), more than the {max} allowed", impact.newly_permitted)]
    TooManyNewPermits { max: usize, impact: Box<Impact> },
}

/// What a bundle change did, and what loading the bundle found worth
/// telling (its warnings: docs/cli.md#check).
#[derive(Debug, Clone)]
pub struct Activation {
    pub digest: String,
    pub previous_digest: String,
    pub changed: bool,
    pub policies: usize,
    pub warnings: Vec<warrant_engine::Diagnostic>,
    /// What the change does to decisions over the store, when asked for.
    pub impact: Option<Impact>,
    /// What it does to logged decisions, when asked for.
    pub replay: Option<Replay>,
}

/// Flips listed per action in an impact the service computes.
const IMPACT_EXAMPLES: usize = 10;

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// The inbound webhook sources (none until [`AppState::with_webhooks`]:
    /// every source is unknown).
    webhooks: Webhooks,
    /// What to do with decision requests that override stored facts.
    request_overrides: RequestOverrides,
    /// What decisions do with names the schema does not declare (`--strict-context`).
    undeclared: Undeclared,
    /// The token vault (`--vault`); `None`: no vault.
    vault: Option<Arc<crate::vault::Vault>>,
}

#[derive(Debug)]
struct Inner {
    snapshot: ArcSwap<Snapshot>,
    store: Store,
    keys: AuditKeys,
    audit: AuditLog,
    auth: crate::auth::Authenticator,
    policies_dir: PathBuf,
    rules: RuleHost,
    write_lock: Mutex<()>,
}

impl AppState {
    /// Opens the active bundle: the most recently activated one recorded in the
    /// store if it was uploaded over the API (so an upload survives a restart),
    /// otherwise the policies directory.
    pub async fn start(
        store: Store,
        keys: AuditKeys,
        policies_dir: PathBuf,
        decisions: DecisionAudit,
        rules: RuleHost,
    ) -> Result<Self, ChangeError> {
        // Versions first, then data: a change made meanwhile is seen again
        // by the next sync rather than missed.
        let mut versions = store.versions().await?;
        let stored_entities = store.entities().await?;
        let recorded = store.active_bundle().await?;
        let recorded_digest = recorded.as_ref().map(|b| b.digest.clone());
        let (source, origin) = match recorded {
            Some(b) if b.origin == BundleOrigin::Api => {
                tracing::info!(digest = %b.digest, "resuming the bundle last uploaded over the API");
                (BundleSource::from_files(b.files)?, BundleOrigin::Api)
            }
            _ => (BundleSource::read_dir(&policies_dir)?, BundleOrigin::Disk),
        };
        let (bundle, pack) = load(&rules, source)?;
        let entities = bundle.entity_set(stored_entities).map_err(ChangeError::EntitiesVsSchema)?;
        let activated_at = Timestamp::now();
        let unchanged = recorded_digest.as_deref() == Some(bundle.digest());
        if !unchanged {
            versions.bundle = store.record_bundle(&stored_bundle(&bundle, origin, activated_at)).await?;
        }
        let audit = AuditLog::open(store.clone(), keys.clone(), decisions).await?;
        if !unchanged {
            let mut event = Event::new(Kind::PolicyUpdated, "startup");
            event.policy_digest = Some(bundle.digest().to_owned());
            event.details.insert("origin".into(), serde_json::json!(origin));
            audit.append(event).await.map_err(|e| ChangeError::Audit(e.to_string()))?;
        }
        let snapshot = Snapshot { bundle: Arc::new(bundle), pack, entities, origin, activated_at, versions };
        Ok(Self {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(snapshot),
                store,
                keys,
                audit,
                auth: crate::auth::Authenticator::default(),
                policies_dir,
                rules,
                write_lock: Mutex::new(()),
            }),
            webhooks: Webhooks::default(),
            request_overrides: RequestOverrides::default(),
            undeclared: Undeclared::default(),
            vault: None,
        })
    }

    /// This state with the inbound webhook sources deliveries are verified
    /// against. Set it on the state the router is built with.
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = webhooks;
        self
    }

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// This state with the token vault.
    #[must_use]
    pub fn with_vault(mut self, vault: Arc<crate::vault::Vault>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The token vault, if this service runs one.
    pub fn vault(&self) -> Option<&Arc<crate::vault::Vault>> {
        self.vault.as_ref()
    }

    /// What every vault call works with: the store and the audit log.
    pub fn backing(&self) -> crate::vault::Backing<'_> {
        crate::vault::Backing { store: self.store(), audit: self.audit() }
    }

    /// This state with `mode` for requests that override stored facts.
    #[must_use]
    pub fn with_request_overrides(mut self, mode: RequestOverrides) -> Self {
        self.request_overrides = mode;
        self
    }

    pub fn request_overrides(&self) -> RequestOverrides {
        self.request_overrides
    }

    /// This state refusing (`Undeclared::Refuse`) or ignoring names the
    /// schema does not declare.
    #[must_use]
    pub fn with_undeclared(mut self, undeclared: Undeclared) -> Self {
        self.undeclared = undeclared;
        self
    }

    pub fn undeclared(&self) -> Undeclared {
        self.undeclared
    }

    /// The snapshot a request should use from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// Where rule-running decisions execute (see [`RuleHost::run`]).
    pub fn rules(&self) -> &RuleHost {
        &self.inner.rules
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn keys(&self) -> &AuditKeys {
        &self.inner.keys
    }

    pub fn auth(&self) -> &crate::auth::Authenticator {
        &self.inner.auth
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Validates `source`, checks the stored entities against it, records it
    /// and makes it active. On any error the active bundle stays.
    /// `actor` is recorded in the `policy.updated` audit record.
    pub async fn activate(
        &self,
        source: BundleSource,
        origin: BundleOrigin,
        actor: &str,
    ) -> Result<Activation, ChangeError> {
        self.activate_gated(source, origin, actor, None).await
    }

    /// [`activate`](Self::activate), refused (`TooManyNewPermits`) when
    /// `max_new_permits` is given and the change newly permits more
    /// requests over the store than that; the `policy.updated` record then
    /// carries the impact's summary.
    pub async fn activate_gated(
        &self,
        source: BundleSource,
        origin: BundleOrigin,
        actor: &str,
        max_new_permits: Option<usize>,
    ) -> Result<Activation, ChangeError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = self.snapshot();
        let (bundle, pack) = load(&self.inner.rules, source)?;
        let mut activation = activation(&current, &bundle);
        if !activation.changed && origin == current.origin {
            return Ok(activation);
        }
        let entities = bundle.entity_set(self.inner.store.entities().await?).map_err(ChangeError::EntitiesVsSchema)?;
        let bundle = Arc::new(bundle);
        if let Some(max) = max_new_permits {
            let impact = impact(&current, &bundle, &entities).await?;
            if impact.newly_permitted > max {
                return Err(ChangeError::TooManyNewPermits { max, impact: Box::new(impact) });
            }
            activation.impact = Some(impact);
        }
        entities.warm_search_like(&current.entities);
        let activated_at = Timestamp::now();
        let bundle_version = self.inner.store.record_bundle(&stored_bundle(&bundle, origin, activated_at)).await?;
        let versions = StoreVersions { bundle: bundle_version, ..current.versions };
        let mut event = Event::new(Kind::PolicyUpdated, actor);
        event.policy_digest = Some(activation.digest.clone());
        event.details.insert("previous_digest".into(), serde_json::json!(activation.previous_digest));
        event.details.insert("origin".into(), serde_json::json!(origin));
        event.details.insert("policies".into(), serde_json::json!(activation.policies));
        if let Some(impact) = &activation.impact {
            event.details.insert("impact".into(), impact_summary(impact));
        }
        self.inner.audit.append(event).await.map_err(|e| ChangeError::Audit(e.to_string()))?;
        self.inner.snapshot.store(Arc::new(Snapshot { bundle, pack, entities, origin, activated_at, versions }));
        Ok(activation)
    }

    /// What activating `source` would do, changing nothing: the activation
    /// it would report, with the impact over the store.
    /// With `replay`, the newest that many `decision` records of the log
    /// stamped within its window are asked again under the new bundle too.
    pub async fn preview(
        &self,
        source: BundleSource,
        replay: Option<(usize, TimeWindow)>,
    ) -> Result<Activation, ChangeError> {
        let current = self.snapshot();
        let (bundle, _) = load(&self.inner.rules, source)?;
        let mut activation = activation(&current, &bundle);
        // The same schema and `entities.json` over the same store: the
        // snapshot's set is the one the new bundle would build.
        let entities = if current.bundle.sees_same_entities(&bundle) {
            current.entities.clone()
        } else {
            bundle.entity_set(self.inner.store.entities().await?).map_err(ChangeError::EntitiesVsSchema)?
        };
        let bundle = Arc::new(bundle);
        activation.impact = Some(impact(&current, &bundle, &entities).await?);
        if let Some((count, window)) = replay {
            let records = self.inner.store.newest_decisions(count, &window).await?;
            let (current, bundle) = (Arc::clone(&current), Arc::clone(&bundle));
            let compute =
                move || current.bundle.replay(&current.entities, &bundle, &entities, &records, IMPACT_EXAMPLES);
            activation.replay = Some(off_workers("policy replay", compute).await?);
        }
        Ok(activation)
    }

    /// Reloads the policies directory (SIGHUP).
    pub async fn reload_from_disk(&self) -> Result<Activation, ChangeError> {
        let source = BundleSource::read_dir(&self.inner.policies_dir)?;
        self.activate(source, BundleOrigin::Disk, "sighup").await
    }

    /// Validates `docs` against the active schema, records what they change
    /// (`entities.replaced`, by `actor`), stores them as the whole entity
    /// set, then publishes them.
    ///
    /// The record is durable before the set is stored: a change never
    /// decides without its record. If storing then fails (a 500), the log
    /// holds a record whose `digest_after` the next record's
    /// `digest_before` does not match.
    pub async fn replace_entities(&self, docs: Vec<Value>, actor: &str) -> Result<usize, ChangeError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = self.snapshot();
        let entities = current.bundle.entity_set(docs.clone()).map_err(ChangeError::Entities)?;
        let diff = entities::diff::diff(&self.inner.store.entities().await?, &docs);
        let mut event = Event::new(Kind::EntitiesReplaced, actor);
        event.policy_digest = Some(current.bundle.digest().to_owned());
        if let Ok(serde_json::Value::Object(details)) = serde_json::to_value(&diff) {
            event.details = details;
        }
        self.inner.audit.append(event).await.map_err(|e| ChangeError::Audit(e.to_string()))?;
        let entities_version = self.inner.store.replace_entities(&docs).await?;
        // Searches right after the change should not pay for the indexes.
        entities.warm_search_like(&current.entities);
        let count = entities.stored_len();
        // The write lock guarantees no bundle swap happened since we read it.
        let snapshot = Snapshot {
            bundle: Arc::clone(&current.bundle),
            pack: current.pack.clone(),
            entities,
            origin: current.origin,
            activated_at: current.activated_at,
            versions: StoreVersions { entities: entities_version, ..current.versions },
        };
        self.inner.snapshot.store(Arc::new(snapshot));
        Ok(count)
    }
}

impl AppState {
    /// Picks up bundle and entity changes other processes sharing the
    /// database made (instances behind one load balancer). Returns whether
    /// the snapshot changed. Run periodically: changes propagate within one
    /// interval plus the reload time.
    pub async fn sync_from_store(&self) -> Result<bool, ChangeError> {
        let store = &self.inner.store;
        if store.versions().await? == self.snapshot().versions {
            return Ok(false);
        }
        let _guard = self.inner.write_lock.lock().await;
        let current = self.snapshot();
        // Versions first, then data (see `start`).
        let versions = store.versions().await?;
        if versions == current.versions {
            return Ok(false);
        }
        let (bundle, pack, origin, activated_at) = if versions.bundle == current.versions.bundle {
            (Arc::clone(&current.bundle), current.pack.clone(), current.origin, current.activated_at)
        } else {
            let Some(recorded) = store.active_bundle().await? else { return Ok(false) };
            let (bundle, pack) = load(&self.inner.rules, BundleSource::from_files(recorded.files)?)?;
            (Arc::new(bundle), pack, recorded.origin, recorded.activated_at)
        };
        let entities = bundle.entity_set(store.entities().await?).map_err(ChangeError::EntitiesVsSchema)?;
        entities.warm_search_like(&current.entities);
        tracing::info!(digest = bundle.digest(), entities = entities.len(), "picked up changes from the shared store");
        self.inner.snapshot.store(Arc::new(Snapshot { bundle, pack, entities, origin, activated_at, versions }));
        Ok(true)
    }
}

/// Loads and validates `source`, then checks it against the service's
/// contract with the pack ([`Gaps::of`]). A shortfall is a warning, not a
/// refusal: such a bundle still serves decisions (warrant is a general
/// decision point; not every deployment resolves credentials), and
/// resolution answers with what is missing.
fn load(rules: &RuleHost, source: BundleSource) -> Result<(Bundle, Gaps), ChangeError> {
    let bundle = rules.load(source)?;
    if !bundle.rules().is_empty() {
        let r = bundle.rules().load_report();
        tracing::info!(
            compiled = r.compiled,
            from_disk = r.from_disk,
            from_memory = r.from_memory,
            millis = r.millis,
            "custom rules loaded"
        );
    }
    let pack = Gaps::of(&bundle);
    if !pack.is_empty() {
        tracing::warn!(
            digest = bundle.digest(),
            missing = %pack,
            "the bundle serves decisions, but its schema lacks what credential resolution relies on"
        );
    }
    Ok((bundle, pack))
}

fn stored_bundle(bundle: &Bundle, origin: BundleOrigin, activated_at: Timestamp) -> StoredBundle {
    let files: BTreeMap<String, String> = bundle.source().to_files();
    StoredBundle { id: 0, digest: bundle.digest().to_owned(), files, origin, activated_at }
}

/// What replacing `current`'s bundle with `bundle` reports, before any impact.
fn activation(current: &Snapshot, bundle: &Bundle) -> Activation {
    let previous_digest = current.bundle.digest().to_owned();
    Activation {
        digest: bundle.digest().to_owned(),
        changed: bundle.digest() != previous_digest,
        previous_digest,
        policies: bundle.policy_count(),
        warnings: bundle.warnings().to_vec(),
        impact: None,
        replay: None,
    }
}

/// The impact of `bundle` (over `entities`) against the active snapshot,
/// computed off the async workers: it decides many requests.
async fn impact(current: &Arc<Snapshot>, bundle: &Arc<Bundle>, entities: &EntitySet) -> Result<Impact, ChangeError> {
    let (current, bundle, entities) = (Arc::clone(current), Arc::clone(bundle), entities.clone());
    let compute =
        move || current.bundle.impact(&current.entities, &bundle, &entities, Timestamp::now(), IMPACT_EXAMPLES);
    off_workers("policy impact", compute).await
}

/// Runs `work` (many decisions) on the blocking pool, off the async workers.
async fn off_workers<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ChangeError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ChangeError::Internal(format!("{what}: {e}")))
}

/// What a `policy.updated` record keeps of an impact: the counts, and the
/// actions whose answers flip.
pub fn impact_summary(impact: &Impact) -> serde_json::Value {
    let flipped: std::collections::BTreeSet<&str> =
        impact.actions.iter().filter(|a| a.newly_permitted + a.newly_denied > 0).map(|a| a.action.as_str()).collect();
    serde_json::json!({
        "newly_permitted": impact.newly_permitted,
        "newly_denied": impact.newly_denied,
        "decided": impact.decided,
        "flipped_actions": flipped,
        "not_covered": impact.not_covered.len(),
    })
}
