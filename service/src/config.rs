//! Command-line flags and `WARRANT_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use warrant_engine::Timestamp;

/// Where `serve` keeps its state when told nothing else.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./warrant-data/warrant.db";

#[derive(Debug, Parser)]
#[command(
    name = "warrant",
    version,
    about = "Policy decision point and audit trail for per-user OAuth data connections"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(Box<ServeArgs>),
    /// Validate a policy bundle (schema, policies, entities); exit 1 on any problem.
    Check {
        /// The bundle directory.
        dir: PathBuf,
        /// Exit 1 on warnings too (a permit that can never apply, Cedar's
        /// validation warnings), for CI that wants a clean bundle.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Format a bundle's policies (`DIR/*.cedar`) with Cedar's own formatter.
    Fmt {
        /// The bundle directory.
        dir: PathBuf,
        /// Write nothing; list the files that are not formatted and exit 1
        /// if any is (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Run a bundle's policy tests (`DIR/tests/*.json`); exit 1 on any failure.
    Test {
        /// The bundle directory.
        dir: PathBuf,
        /// Run only the cases whose name or file name contains this text
        /// (exit 1 if none does, so a typo does not pass).
        #[arg(long)]
        filter: Option<String>,
    },
    /// What a new bundle would decide differently from the current one,
    /// over the live entity store: the requests whose answers flip, counted
    /// per action and per deciding policy, with examples (docs/cli.md#diff).
    /// Exit 0, or 1 when `--max-new-permits` is exceeded; 2 when it cannot run.
    Diff(Box<DiffArgs>),
    /// Pull the active bundle of a running service into a directory, or
    /// push a directory to it as the new bundle.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// Decide one request offline against a bundle directory, explained
    /// (reasons, policies, rule verdicts, errors, what is missing); exit 0
    /// on allow, 1 on deny, 2 when it cannot decide.
    Eval(Box<EvalArgs>),
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with the audit log offline, straight from the database.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with the token vault's keys, straight from the database.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Run a C2SP witness of warrant logs (`docs/witness.md`): cosign each
    /// checkpoint a log submits only if it extends the last one cosigned.
    Witness(Box<WitnessArgs>),
    /// Scaffold a custom rule or a policy test file, wired so that it builds,
    /// loads and passes as written.
    New {
        #[command(subcommand)]
        command: NewCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Create a Rust rule crate that builds, loads and is tested as written.
    ///
    /// Writes `rules/NAME/` in the guest workspace, an entry in
    /// `example-rules/manifest.json` and starter cases in
    /// `example-rules/tests/NAME.json`, and adds the crate to `Cargo.lock`,
    /// so that `build.sh` builds it and `dist/bundle` runs it with no other edit.
    Rule {
        /// The rule's name: `a-z`, `0-9`, single `-` or `_` between them,
        /// starting with a letter (`eu-only`).
        name: String,
        /// The guest workspace.
        #[arg(long, value_name = "DIR", default_value = "wasm-guests")]
        guests: PathBuf,
    },
    /// Write a policy test file with one starter case that `warrant test` runs.
    ///
    /// Writes `DIR/tests/NAME.json`: one case built from the bundle's own
    /// action, types and entities, expecting what the bundle decides now.
    Test {
        /// The file's name (`NAME.json`), as for `new rule`.
        name: String,
        /// The bundle directory.
        #[arg(long, value_name = "DIR", default_value = "policies")]
        bundle: PathBuf,
        /// The action to test (default: the first, by name, with entities
        /// to test it on; one the bundle allows is preferred).
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the chain and checkpoints; exit 1 naming the first bad seq.
    Verify {
        #[command(flatten)]
        log: AuditLogArgs,
        /// First seq to check (the chain before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last seq to check (default: the last record).
        #[arg(long)]
        to: Option<u64>,
        /// A checkpoint you kept (JSON from `GET /v1/audit/checkpoint`): the
        /// log must still contain it, unchanged.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// A signed checkpoint you kept (a note from `GET /log/checkpoint`):
        /// it must verify with a `--log-key`, and the log must still contain it.
        #[arg(long, requires = "log_key")]
        signed_checkpoint: Vec<PathBuf>,
        /// A verifier key of the log (`warrant audit public-key` prints
        /// them; repeat for rotated keys). Given, the checkpoints the log
        /// published are checked too.
        #[arg(long)]
        log_key: Vec<String>,
        /// A witness of the log, as `URL=VKEY`: the newest checkpoint it
        /// cosigned (fetched from it, checked with the log key and its own)
        /// must be in the log, so a cut tail is caught with nothing kept.
        #[arg(long = "witness", requires = "log_key")]
        witnesses: Vec<String>,
    },
    /// Write a self-contained proof that record `--seq` is in the log: the
    /// record, its inclusion proof and the newest signed checkpoint
    /// (`c2sp.org/tlog-proof@v1`), checkable with `audit verify-proof`
    /// and the log's public key alone.
    Prove {
        /// The database holding the log (must exist).
        #[arg(long, env = "WARRANT_DATABASE_URL", default_value = "sqlite://./warrant-data/warrant.db")]
        database_url: String,
        #[arg(long)]
        seq: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Prove against the newest published checkpoint with at least this
        /// many witness cosignatures (default 0: the newest).
        #[arg(long, default_value_t = 0, conflicts_with = "checkpoint")]
        min_cosignatures: usize,
        /// Prove against this signed checkpoint instead (a note you kept,
        /// from `GET /log/checkpoint`): the log must still hash to its root.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Check a proof file offline: no database, no secret, only the log's
    /// verifier keys (and witnesses' keys). Prints the record on success.
    VerifyProof {
        file: PathBuf,
        /// A verifier key of the log (`audit public-key`); repeat for rotated keys.
        #[arg(long, required = true, visible_alias = "vkey")]
        log_key: Vec<String>,
        /// A witness's cosigner key (`warrant witness public-key`); repeat.
        #[arg(long, visible_alias = "witness-vkey")]
        witness_key: Vec<String>,
        /// How many of the `--witness-key`s must have cosigned the proof's
        /// checkpoint (default: all of them).
        #[arg(long)]
        quorum: Option<usize>,
    },
    /// Print the log's verifier keys (C2SP note format), oldest first: what
    /// auditors and witnesses check checkpoints with.
    PublicKey {
        /// The log key file (default: `$XDG_CONFIG_HOME/warrant/log.key`).
        #[arg(long, env = "WARRANT_LOG_KEY_FILE")]
        log_key_file: Option<PathBuf>,
    },
    /// Write records as JSON Lines.
    Export {
        #[command(flatten)]
        log: AuditLogArgs,
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; it is printed once, only its hash is kept.
    Create {
        #[command(flatten)]
        log: AuditLogArgs,
        /// What the key may do (repeat for several).
        #[arg(long = "scope", value_enum, required = true)]
        scopes: Vec<crate::auth::Scope>,
        /// Lifetime: `90d`, `12h`, `30m`.
        #[arg(long, default_value = "90d")]
        expires_in: String,
        /// A note on who or what uses the key.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        log: AuditLogArgs,
    },
    /// Revoke a key by id (the part after `wrnt_`, before the second `_`).
    Revoke {
        #[command(flatten)]
        log: AuditLogArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-wrap every grant's data key under the current (last) vault key,
    /// while the service runs: a key rotation's second step, after every
    /// instance has the new key (SIGHUP or restart). Exit 0 when every
    /// grant is under the current key, 1 when some are left (run it again),
    /// 2 when it cannot run. Audited as `vault.rewrapped`.
    Rewrap {
        #[command(flatten)]
        log: AuditLogArgs,
        /// The vault key file, as `serve --vault-key-file` reads it.
        #[arg(long, env = "WARRANT_VAULT_KEY_FILE")]
        vault_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditLogArgs {
    /// The database holding the log (must exist).
    #[arg(long, env = "WARRANT_DATABASE_URL", default_value = "sqlite://./warrant-data/warrant.db")]
    pub database_url: String,
    /// The audit key file (`WARRANT_AUDIT_KEY` takes precedence).
    #[arg(long, env = "WARRANT_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WARRANT_LISTEN", default_value = "127.0.0.1:8180")]
    pub listen: SocketAddr,

    /// Database URL (`sqlite://PATH`); the file and its directory are created.
    #[arg(long, env = "WARRANT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Serve the demo workspace every README example uses (`service/demo/`:
    /// users, projects, a connection, schemas, tokens) from a database of
    /// its own in `./warrant-demo`, made afresh at each start, with an API
    /// key holding every scope in `./warrant-demo/api-key`.
    #[arg(long, env = "WARRANT_DEMO")]
    pub demo: bool,

    /// Policy bundle directory, loaded at start and on SIGHUP.
    #[arg(long, env = "WARRANT_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,

    /// Audit key file (`<key-id> <hex secret>` per line, last one signs). Default:
    /// `$XDG_CONFIG_HOME/warrant/audit.key`, generated on first start.
    /// `WARRANT_AUDIT_KEY` (same format, `,` between keys) takes precedence.
    #[arg(long, env = "WARRANT_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,

    /// Which decisions are written to the audit log as `decision` records
    /// (credential resolutions, token events and policy changes always are).
    #[arg(long, env = "WARRANT_AUDIT_DECISIONS", value_enum, default_value_t = crate::audit::DecisionAudit::All)]
    pub audit_decisions: crate::audit::DecisionAudit,

    /// The base URL clients reach this service at (e.g. behind a proxy),
    /// used in the AuthZEN metadata document. Default: `http://` (`https://`
    /// with `--tls-cert`) and the listening address (never the request's
    /// `Host` header).
    #[arg(long, env = "WARRANT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The file of the Ed25519 keys that sign the log's checkpoints (Go's
    /// `PRIVATE+KEY+…` note format, the last line signs). Default:
    /// `$XDG_CONFIG_HOME/warrant/log.key`, generated on first start.
    #[arg(long, env = "WARRANT_LOG_KEY_FILE")]
    pub log_key_file: Option<PathBuf>,

    /// The log's origin, the first line of its checkpoints and its keys'
    /// name (e.g. `example.com/warrant-audit`). Fixed when the log key is
    /// generated; given later, it must match.
    #[arg(long, env = "WARRANT_LOG_ORIGIN")]
    pub log_origin: Option<String>,

    /// Require an API key with this scope to read the log's checkpoint and
    /// tiles (`/log/*`). By default they are public: they hold only sizes
    /// and hashes, and are what anyone checks the log against.
    #[arg(long, env = "WARRANT_LOG_READ_SCOPE", value_enum)]
    pub log_read_scope: Option<crate::scope::Scope>,

    /// How often, at most, a new checkpoint is published while records
    /// arrive: `250ms`, `1s`, `2m` (a bare number is milliseconds).
    #[arg(long, env = "WARRANT_CHECKPOINT_INTERVAL", default_value = "1s", value_parser = duration,
          alias = "checkpoint-interval-ms")]
    pub checkpoint_interval: std::time::Duration,

    /// A witness to submit each checkpoint to, as `URL=VKEY`: its
    /// tlog-witness submission URL and its cosigner key (`warrant witness
    /// public-key` prints it). Repeat for several.
    #[arg(long = "witness", env = "WARRANT_WITNESSES", value_delimiter = ',')]
    pub witnesses: Vec<String>,

    /// How many witnesses must cosign a checkpoint for it to count as
    /// witnessed (default: 1 with any witness).
    #[arg(long, env = "WARRANT_WITNESS_QUORUM")]
    pub witness_quorum: Option<usize>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first). Read
    /// again, with `--tls-key`, on SIGHUP; a pair that fails to load then
    /// keeps the old one serving.
    #[arg(long, env = "WARRANT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "WARRANT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Largest request body accepted, in bytes (413 above it).
    #[arg(long, env = "WARRANT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest body for bulk uploads (`PUT /v1/entities`, `PUT /v1/policies`), in bytes.
    #[arg(long, env = "WARRANT_MAX_BULK_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_bulk_body_bytes: usize,

    /// Webhooks file (JSON): inbound sources with their secrets, outbound
    /// subscriptions. None: no sources, no subscriptions.
    #[arg(long, env = "WARRANT_WEBHOOKS")]
    pub webhooks: Option<PathBuf>,

    /// The token vault's file (JSON, docs/vault.md#providers): which OAuth
    /// provider each connection's grants come from. None: no vault (the
    /// grant endpoints answer 404 `vault_disabled`).
    #[arg(long, env = "WARRANT_VAULT")]
    pub vault: Option<PathBuf>,

    /// The vault's key-encryption keys (lines `<id> <64 hex digits>`; the
    /// last one wraps). Default: `WARRANT_VAULT_KEY`, else
    /// `$XDG_CONFIG_HOME/warrant/vault.key`, generated on first start.
    #[arg(long, env = "WARRANT_VAULT_KEY_FILE", requires = "vault")]
    pub vault_key_file: Option<PathBuf>,

    /// How often the vault's background refresher looks for grants about
    /// to expire (and refreshes interrupted by a crash): `30s`, `2m`.
    #[arg(long, env = "WARRANT_VAULT_REFRESH_EVERY", default_value = "30s", value_parser = duration)]
    pub vault_refresh_every: std::time::Duration,

    /// Log format on standard error.
    #[arg(long, env = "WARRANT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// How often to look for policy and entity changes made by other
    /// instances sharing the database, in milliseconds (the propagation bound).
    #[arg(long, env = "WARRANT_SYNC_INTERVAL_MS", default_value_t = 1000)]
    pub sync_interval_ms: u64,

    /// Directory for compiled rule components, reused across restarts.
    /// Default: `$XDG_CACHE_HOME/warrant/rules` (or `~/.cache/warrant/rules`).
    #[arg(long, env = "WARRANT_RULE_CACHE")]
    pub rule_cache: Option<PathBuf>,

    /// How many decisions that run custom rules may execute at once
    /// (default: one per core). Others wait; Cedar-only decisions never do.
    #[arg(long, env = "WARRANT_RULE_WORKERS")]
    pub rule_workers: Option<usize>,

    /// How often refusals of unauthenticated traffic (unknown or malformed
    /// API keys, unsigned or mis-signed webhook deliveries) are recorded, as
    /// one summary record per kind, source and reason, in milliseconds.
    /// They are never recorded one per request.
    #[arg(long, env = "WARRANT_REJECTION_SUMMARY_INTERVAL_MS", default_value_t = 60_000)]
    pub rejection_summary_interval_ms: u64,

    /// Refusals per second an address may cause with requests that prove no
    /// secret (malformed or unknown API keys, unsigned webhook deliveries)
    /// before it is answered 429 for everything until its budget refills
    /// (bursts of twice this). 0 turns it off.
    #[arg(long, env = "WARRANT_REFUSALS_PER_ADDRESS", default_value_t = 50)]
    pub refusals_per_address: u32,

    /// Requests per second one address may send (bursts of twice this); 0:
    /// no limit (the default: a decision point often serves a few busy callers).
    #[arg(long, env = "WARRANT_RATE_LIMIT_PER_ADDRESS", default_value_t = 0)]
    pub rate_limit_per_address: u32,

    /// Requests per second one API key may make (bursts of twice this); 0:
    /// no limit.
    #[arg(long, env = "WARRANT_RATE_LIMIT_PER_KEY", default_value_t = 0)]
    pub rate_limit_per_key: u32,

    /// Seconds a client has to send a request's whole header, counted from
    /// the connection's accept or from the end of its previous response:
    /// also how long an idle keep-alive connection stays open.
    #[arg(long, env = "WARRANT_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,

    /// The longest pause, in seconds, between two chunks of a request body
    /// before the request is answered 408.
    #[arg(long, env = "WARRANT_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,

    /// Open connections at most (also bounded by the open-file limit, less
    /// 128). At the cap, the connection idle the longest is closed for a
    /// new one.
    #[arg(long, env = "WARRANT_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Milliseconds a request waits for a custom-rule slot (see
    /// `--rule-workers`) before it is refused with 503 `rules_busy`.
    #[arg(long, env = "WARRANT_RULE_SLOT_WAIT_MS", default_value_t = 1000)]
    pub rule_slot_wait_ms: u64,

    /// Decision requests whose AuthZEN `properties` or request `entities`
    /// override a stored entity, or that set `context.now`: `record` them
    /// in the decision record (default), `allow` them without recording
    /// what they supplied, or `deny` them (400 `override_refused`).
    #[arg(long, env = "WARRANT_REQUEST_OVERRIDES", value_enum, default_value_t = RequestOverrides::Record)]
    pub request_overrides: RequestOverrides,

    /// Refuse (400 `undeclared`) a request whose context keys, entity
    /// `properties` or `action.properties` name something the schema does
    /// not declare. By default they are ignored (AuthZEN: a PDP ignores
    /// what it does not understand) and named in the decision record and
    /// in `options.explain` answers.
    #[arg(long, env = "WARRANT_STRICT_CONTEXT")]
    pub strict_context: bool,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "WARRANT_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// What to do with requests that override stored facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RequestOverrides {
    /// Accept them; the decision record keeps only the ids.
    Allow,
    /// Accept them and record what was supplied in the decision record.
    #[default]
    Record,
    /// Refuse a request whose properties or entities override a stored
    /// entity, or that sets `context.now` (400 `override_refused`).
    Deny,
}

/// A duration flag: a number and a unit (`ms`, `s`, `m`, `h`), or a bare
/// number of milliseconds; between 10 ms and a day.
pub(crate) fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration such as `250ms`, `1s` or `2m`"))?;
    let millis = match unit {
        "" | "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("`{text}` is not a duration such as `250ms`, `1s` or `2m`"))?;
    if !(10..=86_400_000).contains(&millis) {
        return Err(format!("`{text}` is out of range: between 10ms and 24h"));
    }
    Ok(std::time::Duration::from_millis(millis))
}

/// `warrant witness`: run the witness, or `warrant witness public-key`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    pub command: Option<WitnessCommand>,
    #[command(flatten)]
    pub run: WitnessRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Print the witness's cosigner verifier key (C2SP note format, type
    /// 0x04): what logs (`warrant serve --witness URL=VKEY`) and clients
    /// check its cosignatures with. Never generates a key.
    PublicKey {
        /// The witness key file (default: `$XDG_CONFIG_HOME/warrant/witness.key`).
        #[arg(long, env = "WARRANT_WITNESS_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WitnessRunArgs {
    /// Address to listen on.
    #[arg(long, env = "WARRANT_WITNESS_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// The witness's state, a SQLite file (it and its directory are
    /// created): the latest checkpoint cosigned for each log.
    #[arg(long, env = "WARRANT_WITNESS_STATE", default_value = "./warrant-witness/witness.db")]
    pub state: PathBuf,

    /// The witness's cosigner key file (`PRIVATE+KEY+…`, type 0x04).
    /// Default: `$XDG_CONFIG_HOME/warrant/witness.key`, generated on first start.
    #[arg(long, env = "WARRANT_WITNESS_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// The witness's name, its key's name (e.g. `witness.example.com/w1`).
    /// Fixed when the key is generated (default
    /// `warrant-witness.invalid/<random>`); given later, it must match.
    #[arg(long, env = "WARRANT_WITNESS_NAME")]
    pub name: Option<String>,

    /// A log to follow: its checkpoint verifier key (`warrant audit
    /// public-key`), whose name is the log's origin. Repeat for several
    /// logs, and for a log's rotated keys. In the environment, separate
    /// keys with spaces.
    #[arg(long = "log", env = "WARRANT_WITNESS_LOGS", value_delimiter = ' ', required = true)]
    pub logs: Vec<String>,

    /// Log format on standard error.
    #[arg(long, env = "WARRANT_WITNESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Seconds a request may take, body included, before it is answered 408.
    #[arg(long, env = "WARRANT_WITNESS_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Open connections at most (also bounded by the open-file limit).
    #[arg(long, env = "WARRANT_WITNESS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "WARRANT_WITNESS_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Write the active bundle's files into DIR (rule components as the
    /// bytes they are) and print its digest.
    Pull {
        #[command(flatten)]
        service: ServiceArgs,
        /// The directory to write (created if missing).
        dir: PathBuf,
        /// Write into a non-empty DIR: its bundle files (what `check` loads)
        /// that the active bundle lacks are removed, other files (tests,
        /// docs) are left alone.
        #[arg(long)]
        force: bool,
    },
    /// Upload DIR (the files `check` loads) as the new bundle and print its
    /// digest, or the service's diagnostics (exit 1).
    Push {
        #[command(flatten)]
        service: ServiceArgs,
        /// The bundle directory.
        dir: PathBuf,
    },
}

/// A running service and the key to talk to it with. The key itself is
/// never a flag (it would land in shell history and `ps`): it comes from
/// `--api-key-file` or the `WARRANT_API_KEY` variable.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// The service's base URL.
    #[arg(long, env = "WARRANT_URL", default_value = "http://127.0.0.1:8180")]
    pub url: reqwest::Url,
    /// A file holding an API key with the `policy:admin` scope (default:
    /// the `WARRANT_API_KEY` variable).
    #[arg(long, env = "WARRANT_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// `warrant diff OLD_DIR NEW_DIR`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The bundle in force (or the one to compare against).
    pub old: PathBuf,
    /// The changed bundle.
    pub new: PathBuf,
    /// Compare over the entities stored in this database (`serve`'s
    /// `--database-url`); without it (and `--entities`), over the bundles'
    /// own `entities.json` only.
    #[arg(long, env = "WARRANT_DATABASE_URL", conflicts_with = "entities")]
    pub database_url: Option<String>,
    /// Compare over these Cedar entities (a JSON array, as
    /// `GET /v1/entities` returns it, or a policy test file) instead.
    #[arg(long)]
    pub entities: Option<PathBuf>,
    /// Exit 1 when the change newly permits more than this many requests
    /// (a CI gate against widening access unexpectedly).
    #[arg(long)]
    pub max_new_permits: Option<usize>,
    /// Also replay the newest N `decision` records of `--database-url`'s
    /// audit log under the new bundle, with the inputs they recorded, and
    /// list those whose answer changes.
    #[arg(long, requires = "database_url")]
    pub replay: Option<usize>,
    /// Replay only decisions logged at or after this time (RFC 3339); the
    /// newest `--replay` of them, 100,000 when `--replay` is not given.
    #[arg(long, requires = "database_url", value_parser = parse_time)]
    pub replay_since: Option<Timestamp>,
    /// Replay only decisions logged before this time (RFC 3339).
    #[arg(long, requires = "database_url", value_parser = parse_time)]
    pub replay_until: Option<Timestamp>,
    /// Flips listed per action (all are counted).
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// Print the report as JSON (`PUT /v1/policies?dry_run=true`'s `impact`).
    #[arg(long)]
    pub json: bool,
}

/// `warrant eval`: one request, as flags or as a `POST /v1/authorize` body.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The bundle directory.
    #[arg(long, env = "WARRANT_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,
    /// Cedar entities JSON (an array, as `GET /v1/entities` returns it, or
    /// a policy test file's `entities`), seen over the bundle's own
    /// `entities.json` as the service sees stored entities.
    #[arg(long)]
    pub entities: Option<PathBuf>,
    /// The principal: `User::"alice"`, `User::alice` or
    /// `Analytics::User::"alice"`.
    #[arg(long, required_unless_present = "request", conflicts_with = "request")]
    pub principal: Option<String>,
    /// The action id (`view_notebook`) or its full uid.
    #[arg(long, required_unless_present = "request", conflicts_with = "request")]
    pub action: Option<String>,
    /// The resource, spelled as the principal.
    #[arg(long, required_unless_present = "request", conflicts_with = "request")]
    pub resource: Option<String>,
    /// The Cedar context, a JSON object (`{"now": "2026-06-01T12:00:00Z"}`).
    #[arg(long, conflicts_with = "request")]
    pub context: Option<String>,
    /// The request as a file holding a `POST /v1/authorize` body (`-`:
    /// standard input), instead of the flags above.
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// Print the native answer (`POST /v1/authorize`'s shape) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An RFC 3339 time on the command line.
fn parse_time(value: &str) -> Result<Timestamp, String> {
    Timestamp::parse(value).map_err(|_| format!("`{value}` is not an RFC 3339 time (2026-12-01T00:00:00Z)"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::time::Duration;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(super::duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(super::duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(super::duration("50"), Ok(Duration::from_millis(50)));
        assert_eq!(super::duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(super::duration("24h"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "s", "25h", "1d", "-1s", "1.5s", "5ms", "2000m", "99999999999999999999"] {
            assert!(super::duration(bad).is_err(), "{bad}");
        }
    }
}
