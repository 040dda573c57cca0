//! The process-wide rules host: one wasmtime engine (pooling allocator, fuel,
//! epoch interruption, no async), its epoch ticker, and the compiled
//! components, cached in memory and on disk by content hash.
//!
//! A compiled artifact is native code that wasmtime loads with an unsafe
//! deserialize, so the disk cache is trusted only as far as it must be: the
//! directory must belong to this user and be writable by no one else, and
//! every artifact is stored behind an HMAC-SHA256 under a key that is not in
//! the cache (the service derives it from the audit key). An artifact whose
//! tag does not check out is compiled again from the bundle's component.
//!
//! Bundles come and go (SIGHUP, `PUT /v1/policies`); the runtime stays, so a
//! reload whose components did not change compiles nothing.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::manifest::MAX_MEMORY_BYTES;
use crate::redact::Redactor;

/// How often the epoch advances: the unit of `limits.timeout_ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Pool sizes: instances are cheap to keep (virtual memory only), but each
/// live one holds a slot. A rule keeps at most a few warm instances per
/// concurrent caller, so a few hundred slots serve dozens of rules.
const POOL_COMPONENT_INSTANCES: u32 = 256;
const POOL_CORE_INSTANCES: u32 = 2_048;
const POOL_MEMORIES: u32 = 512;
const POOL_TABLES: u32 = 1_024;

/// Why the rules host could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start the rules engine: {0}")]
    Engine(String),
    #[error("cannot use rule cache `{dir}`: {message}")]
    CacheDir { dir: String, message: String },
    #[error("cannot start the rules epoch ticker: {0}")]
    Ticker(String),
}

/// Why a component could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// wasmtime refused the component; its message, causes included.
    #[error("{0}")]
    Invalid(String),
    #[error("rule cache lock poisoned")]
    CachePoisoned,
}

/// Where compiled components come from, for load-time reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled by cranelift now.
    Compiled,
    /// Already compiled by this process.
    Memory,
    /// Deserialized from the on-disk cache.
    Disk,
}

/// One wasmtime engine for the whole process, with its compiled components.
pub struct RuleRuntime {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    /// Key: sha256 of the component bytes.
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    stop_ticker: Arc<AtomicBool>,
    /// What a guest's log line goes through before it reaches the log.
    log_redactor: Arc<Redactor>,
    /// Keys the HMAC each cached artifact is stored behind.
    cache_key: Hmac<Sha256>,
}

/// Bytes of the HMAC-SHA256 tag in front of a cached artifact.
const TAG_LEN: usize = 32;

impl std::fmt::Debug for RuleRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRuntime").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

impl RuleRuntime {
    /// A runtime caching compiled components in `cache_dir` (created, mode
    /// 0700, if missing) or only in memory. Starts the epoch ticker thread.
    ///
    /// Guests' log lines are redacted like audit text
    /// (docs/audit.md#redaction) with `log_redactor`: the service passes the
    /// one its audit log uses, so a token a rule logs has the digest an
    /// auditor searches for. `None`: a redactor with a random key ([`Redactor::ephemeral`]).
    pub fn new(cache_dir: Option<PathBuf>, log_redactor: Option<Redactor>) -> Result<Arc<Self>, RuntimeError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| RuntimeError::Engine(format!("no randomness: {e}")))?;
        Self::with_cache_key(cache_dir, log_redactor, &key)
    }

    /// [`new`](Self::new), with the key that authenticates cached artifacts:
    /// processes given the same key reuse each other's artifacts (a random
    /// key, as `new` uses, makes the disk cache useful to this process only).
    /// The cache directory must be this user's and not writable by others.
    pub fn with_cache_key(
        cache_dir: Option<PathBuf>,
        log_redactor: Option<Redactor>,
        cache_key: &[u8],
    ) -> Result<Arc<Self>, RuntimeError> {
        let cache_key =
            Hmac::<Sha256>::new_from_slice(cache_key).map_err(|e| RuntimeError::Engine(format!("cache key: {e}")))?;
        let log_redactor = match log_redactor {
            Some(r) => r,
            None => Redactor::ephemeral().map_err(|e| RuntimeError::Engine(e.to_string()))?,
        };
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_CORE_INSTANCES)
            .total_memories(POOL_MEMORIES)
            .total_tables(POOL_TABLES)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .max_memory_size(usize::try_from(MAX_MEMORY_BYTES).unwrap_or(usize::MAX))
            .max_unused_warm_slots(32);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .consume_fuel(true)
            .epoch_interruption(true)
            // Synchronous calls only: the async machinery makes every
            // component call ~3× dearer (field notes: 205 ns vs 620 ns).
            .concurrency_support(false)
            .cranelift_opt_level(OptLevel::Speed)
            .max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        if let Some(dir) = &cache_dir {
            let refuse = |message: String| RuntimeError::CacheDir { dir: dir.display().to_string(), message };
            create_private_dir(dir).map_err(|e| refuse(e.to_string()))?;
            check_private_dir(dir).map_err(refuse)?;
        }
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = Arc::clone(&stop_ticker);
            std::thread::Builder::new()
                .name("warrant-rules-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Ticker(e.to_string()))?;
        }
        Ok(Arc::new(Self {
            engine,
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
            stop_ticker,
            log_redactor: Arc::new(log_redactor),
            cache_key,
        }))
    }

    /// The runtime `Bundle::load` uses when the caller gives none: memory
    /// cache only, created on first use (bundles without rules never start it).
    pub fn shared() -> Result<Arc<Self>, RuntimeError> {
        static SHARED: OnceLock<Result<Arc<RuleRuntime>, RuntimeError>> = OnceLock::new();
        SHARED.get_or_init(|| Self::new(None, None)).clone()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn log_redactor(&self) -> &Arc<Redactor> {
        &self.log_redactor
    }

    /// The compiled form of `bytes`: from memory, from the disk cache, or
    /// compiled now (and then cached in both).
    #[allow(unsafe_code, reason = "Component::deserialize trusts its input: see the SAFETY notes")]
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, CompiledFrom), CompileError> {
        let key: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(c) = self.compiled.lock().map_err(|_| CompileError::CachePoisoned)?.get(&key) {
            return Ok((c.clone(), CompiledFrom::Memory));
        }
        let path = self.cache_dir.as_ref().map(|dir| dir.join(self.artifact_name(&key)));
        let mut from_disk = None;
        if let Some(path) = &path
            && let Ok(stored) = std::fs::read(path)
            && let Some(artifact) = self.authentic(&key, &stored)
        {
            // SAFETY: wasmtime requires these bytes to be the unmodified
            // output of `Engine::precompile_component` (or
            // `Component::serialize`); it only lightly validates them, so
            // other bytes could run arbitrary code. What it does promise is
            // that such output from any other wasmtime version or engine
            // configuration is refused with an `Err` (we then compile from
            // source). We rely on: the file was written by
            // `precompile_component` (the compatibility hash is in its name),
            // whole (`write_atomically` renames a complete temporary file into
            // place), into a directory only this user can write (`new`
            // refuses any other), and it carries an HMAC under a key the
            // cache does not hold, checked above: bytes anyone else wrote
            // are compiled again, never deserialized.
            from_disk = unsafe { Component::deserialize(&self.engine, artifact) }.ok();
        }
        let (component, from) = match from_disk {
            Some(c) => (c, CompiledFrom::Disk),
            None => {
                let artifact =
                    self.engine.precompile_component(bytes).map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
                if let Some(path) = &path {
                    // Best effort: a read-only cache only costs a recompile.
                    let _ = write_atomically(path, &[self.tag(&key, &artifact).as_slice(), &artifact].concat());
                }
                // SAFETY: the unmodified output of `precompile_component` of
                // this very engine, just now: what wasmtime requires.
                let c = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
                (c, CompiledFrom::Compiled)
            }
        };
        self.compiled.lock().map_err(|_| CompileError::CachePoisoned)?.insert(key, component.clone());
        Ok((component, from))
    }

    /// The HMAC-SHA256, under the cache key, of the component's SHA-256
    /// and its `artifact`: binding the two, so an artifact moved under
    /// another component's name does not check out.
    fn tag(&self, component: &[u8; 32], artifact: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.cache_key.clone();
        mac.update(component);
        mac.update(artifact);
        mac.finalize().into_bytes().into()
    }

    /// The artifact inside `stored` (tag, then artifact) if its tag checks
    /// out for `component`, compared in constant time.
    fn authentic<'s>(&self, component: &[u8; 32], stored: &'s [u8]) -> Option<&'s [u8]> {
        let (tag, artifact) = stored.split_at_checked(TAG_LEN)?;
        let mut mac = self.cache_key.clone();
        mac.update(component);
        mac.update(artifact);
        mac.verify_slice(tag).ok().map(|()| artifact)
    }

    /// `<sha256 of the component>-<engine compatibility hash>.cwasm`: a new
    /// wasmtime or different settings never read an old artifact.
    fn artifact_name(&self, key: &[u8; 32]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}.cwasm", hex::encode(key), h.finish())
    }
}

impl Drop for RuleRuntime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Refuses a cache directory another user owns or can write to: whoever
/// writes there chooses the native code this process runs.
fn check_private_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(format!(
                "owned by uid {}, not this user ({me}); refusing to load compiled code from it",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "writable by others (mode {:o}); refusing to load compiled code from it (chmod go-w)",
                meta.mode() & 0o777
            ));
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
