//! The rules host against hostile and well-behaved guests
//! (`tests/fixtures/rules/*.wat`): every failure denies, within its budget,
//! and the host keeps answering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "tests")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use warrant_engine::Timestamp;
use warrant_engine::rules::{Mode, RuleOutcome, RuleRuntime};
use warrant_engine::{Bundle, BundleError, EntityRef, Query, RedactionConfig, Redactor};

const SCHEMA: &str = r#"
entity User;
entity Doc;
action read, write appliesTo { principal: User, resource: Doc, context: { note?: String } };
"#;
const POLICIES: &str = r#"
@id("anyone-reads") permit(principal, action == Action::"read", resource);
"#;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rules").join(format!("{name}.wat"));
    let text = std::fs::read_to_string(&path).unwrap();
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A bundle directory with the fixtures as rules, one manifest entry each:
/// `(rule name, fixture, extra manifest fields)`.
fn bundle_dir(rules: &[(&str, &str, serde_json::Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("policies.cedar"), POLICIES).unwrap();
    if !rules.is_empty() {
        std::fs::create_dir(dir.path().join("rules")).unwrap();
    }
    let mut entries = Vec::new();
    for (name, fixture_name, extra) in rules {
        let file = format!("{fixture_name}.wasm");
        std::fs::write(dir.path().join("rules").join(&file), fixture(fixture_name)).unwrap();
        let mut entry = json!({"name": name, "file": file, "actions": ["read"], "mode": "enforce"});
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        entries.push(entry);
    }
    if !rules.is_empty() {
        let manifest = json!({"version": 1, "rules": entries});
        std::fs::write(dir.path().join("rules/manifest.json"), serde_json::to_string_pretty(&manifest).unwrap())
            .unwrap();
    }
    dir
}

fn load(dir: &tempfile::TempDir) -> Bundle {
    Bundle::load_dir(dir.path()).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics()))
}

fn read(bundle: &Bundle, action: &str) -> warrant_engine::Decision {
    read_with(bundle, action, Map::new())
}

fn read_with(bundle: &Bundle, action: &str, context: Map<String, serde_json::Value>) -> warrant_engine::Decision {
    let query = Query {
        principal: EntityRef { type_name: "User".into(), id: "alice".into(), properties: None },
        action: action.into(),
        resource: EntityRef { type_name: "Doc".into(), id: "d1".into(), properties: None },
        context,
        entities: Vec::new(),
        ..Query::default()
    };
    let entities = bundle.entity_set(Vec::new()).unwrap();
    bundle.decide(&entities, &query, Timestamp::now()).unwrap()
}

fn load_error(dir: &tempfile::TempDir) -> String {
    match Bundle::load_dir(dir.path()) {
        Err(BundleError::Invalid(d)) => d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        other => panic!("expected an invalid bundle, got {other:?}"),
    }
}

#[test]
fn an_enforcing_deny_overrides_cedars_allow_with_the_rules_reason() {
    let bundle = load(&bundle_dir(&[("says-no", "deny", json!({}))]));
    let d = read(&bundle, "read");
    assert!(!d.allowed);
    assert_eq!(d.reasons, ["fixture_says_no"]);
    assert!(d.policies.is_empty(), "no Cedar policy determined this deny: {:?}", d.policies);
    assert_eq!(d.rules.len(), 1);
    assert_eq!(d.rules[0].rule, "says-no");
    assert_eq!(d.rules[0].verdict, RuleOutcome::Deny);
    assert_eq!(d.rules[0].reason.as_deref(), Some("fixture_says_no"));
}

#[test]
fn an_observing_rule_is_reported_and_never_applied() {
    let bundle = load(&bundle_dir(&[("says-no", "deny", json!({"mode": "observe"}))]));
    let d = read(&bundle, "read");
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.rules[0].mode, Mode::Observe);
    assert_eq!(d.rules[0].verdict, RuleOutcome::Deny);
    // An observing rule that fails is reported too, and still not applied.
    let bundle = load(&bundle_dir(&[("boom", "trap", json!({"mode": "observe"}))]));
    let d = read(&bundle, "read");
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.rules[0].verdict, RuleOutcome::Error);
}

#[test]
fn rules_are_not_consulted_when_cedar_denies_or_for_other_actions() {
    let bundle = load(&bundle_dir(&[("says-no", "deny", json!({"actions": ["read", "write"]}))]));
    let d = read(&bundle, "write");
    assert!(!d.allowed);
    assert_eq!(d.reasons, ["no_permit"]);
    assert!(d.rules.is_empty(), "a rule cannot change a deny, so it is not run: {:?}", d.rules);
    assert!(bundle.action_has_rules("write") && bundle.action_has_rules("read"));

    let bundle = load(&bundle_dir(&[("says-no", "deny", json!({"actions": ["write"]}))]));
    let d = read(&bundle, "read");
    assert!(d.allowed && d.rules.is_empty(), "{d:?}");
    assert!(!bundle.action_has_rules("read"));
}

/// Each hostile guest: denied with `rule_error:<name>` and the failure code,
/// well within a second, and the next decision works the same way.
#[test]
fn hostile_guests_fail_closed_within_their_budget() {
    let cases = [
        ("spin", "endless-loop", json!({"limits": {"fuel": 5_000_000, "timeout_ms": 200}}), "out_of_fuel"),
        // Fuel too large to matter: the epoch deadline stops it.
        ("spin-long", "endless-loop", json!({"limits": {"fuel": 1u64 << 60, "timeout_ms": 5}}), "timeout"),
        ("hog", "memory-hog", json!({"limits": {"memory_bytes": 1 << 20}}), "memory_limit"),
        ("boom", "trap", json!({}), "trap"),
    ];
    for (name, fixture_name, extra, code) in cases {
        let bundle = load(&bundle_dir(&[(name, fixture_name, extra)]));
        for attempt in 0..3 {
            let started = Instant::now();
            let d = read(&bundle, "read");
            let took = started.elapsed();
            assert!(!d.allowed, "{name}: {d:?}");
            assert_eq!(d.reasons, [format!("rule_error:{name}")], "{name}");
            assert_eq!(d.rules[0].verdict, RuleOutcome::Error, "{name}");
            assert_eq!(d.rules[0].reason.as_deref(), Some(code), "{name} (attempt {attempt}): {:?}", d.rules[0]);
            assert!(d.rules[0].error.is_some(), "{name}: a failure explains itself");
            assert!(took < Duration::from_secs(1), "{name} took {took:?}");
        }
    }
}

#[test]
fn the_epoch_deadline_stops_a_loop_near_its_timeout() {
    let bundle =
        load(&bundle_dir(&[("spin", "endless-loop", json!({"limits": {"fuel": 1u64 << 60, "timeout_ms": 20}}))]));
    let started = Instant::now();
    let d = read(&bundle, "read");
    let took = started.elapsed();
    assert_eq!(d.rules[0].reason.as_deref(), Some("timeout"));
    // 20 ticks of 1 ms: not before 18 ms, and not long after.
    assert!(took >= Duration::from_millis(18), "stopped too early: {took:?}");
    assert!(took < Duration::from_millis(500), "stopped too late: {took:?}");
}

#[test]
fn a_component_importing_a_clock_is_refused_at_load_naming_the_import() {
    let message = load_error(&bundle_dir(&[("clock", "wall-clock", json!({}))]));
    assert!(message.contains("rules/wall-clock.wasm"), "{message}");
    assert!(message.contains("`wasi:clocks/wall-clock@0.2.0`"), "{message}");
    assert!(message.contains("rule `clock`"), "{message}");
}

#[test]
fn warm_instances_keep_state_and_fresh_ones_never_do() {
    let warm = load(&bundle_dir(&[("count", "counter", json!({"isolation": "warm"}))]));
    assert!(read(&warm, "read").allowed);
    let second = read(&warm, "read");
    assert!(!second.allowed, "the warm instance was reused: its counter survived");
    assert_eq!(second.reasons, ["state_survived"]);

    let fresh = load(&bundle_dir(&[("count", "counter", json!({"isolation": "fresh"}))]));
    for _ in 0..5 {
        let d = read(&fresh, "read");
        assert!(d.allowed, "a fresh instance never sees an earlier call: {d:?}");
    }
}

#[test]
fn warm_instances_serve_concurrent_callers() {
    // The counter denies from its second call on *in the same instance*;
    // concurrent callers each get their own. Run the warm rule from many
    // threads: every decision is one of the two verdicts, none is an error.
    let warm = Arc::new(load(&bundle_dir(&[("count", "counter", json!({}))])));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let bundle = Arc::clone(&warm);
            std::thread::spawn(move || (0..50).map(|_| read(&bundle, "read")).collect::<Vec<_>>())
        })
        .collect();
    for t in threads {
        for d in t.join().unwrap() {
            assert_ne!(d.rules[0].verdict, RuleOutcome::Error, "{d:?}");
        }
    }
}

#[test]
fn manifest_mistakes_are_located_and_named() {
    let dir = bundle_dir(&[("says-no", "deny", json!({"actions": ["read", "delete"]}))]);
    assert!(load_error(&dir).contains("action `delete` is not in the schema"));

    let dir = bundle_dir(&[("says-no", "deny", json!({"limits": {"memory_bytes": 1u64 << 40}}))]);
    let message = load_error(&dir);
    assert!(message.contains("rules/manifest.json:") && message.contains("limits.memory_bytes"), "{message}");

    let dir = bundle_dir(&[("says-no", "deny", json!({"file": "missing.wasm"}))]);
    let message = load_error(&dir);
    assert!(message.contains("`rules/missing.wasm` does not exist"), "{message}");
    assert!(message.contains("rules/deny.wasm: not named by any rule"), "{message}");

    let dir = bundle_dir(&[("says-no", "deny", json!({"mode": "maybe"}))]);
    let message = load_error(&dir);
    assert!(message.contains("rules/manifest.json:") && message.contains("unknown variant `maybe`"), "{message}");

    let dir = bundle_dir(&[("says-no", "deny", json!({}))]);
    std::fs::write(dir.path().join("rules/deny.wasm"), b"not wasm").unwrap();
    let message = load_error(&dir);
    assert!(message.contains("rules/deny.wasm: not a valid WebAssembly component"), "{message}");

    let dir = bundle_dir(&[("says-no", "deny", json!({}))]);
    std::fs::remove_file(dir.path().join("rules/manifest.json")).unwrap();
    assert!(load_error(&dir).contains("no manifest"));
}

/// The log lines `f` writes through `tracing`, as text.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let subscriber = tracing_subscriber::fmt().with_writer({
        let sink = sink.clone();
        move || sink.clone()
    });
    tracing::subscriber::with_default(subscriber.with_ansi(false).finish(), f);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

/// A rule's log line is redacted like audit text before it reaches the log
/// (docs/audit.md#redaction): with the service's redactor, a token appears
/// as the digest an auditor would search for; with none, still never in clear.
#[test]
fn a_rules_log_lines_are_redacted_before_they_reach_the_log() {
    let dir = bundle_dir(&[("chatty", "log-context", json!({"mode": "observe"}))]);
    let source = || warrant_engine::BundleSource::read_dir(dir.path()).unwrap();
    let note = "retry with Bearer s3cr3t-token-abc; dsn=postgres://svc:hunter2@db.internal/x";
    let context = || Map::from_iter([("note".to_owned(), json!(note))]);

    let redactor = Redactor::new(RedactionConfig::default(), b"test digest key").unwrap();
    let runtime = RuleRuntime::new(None, Some(redactor.clone())).unwrap();
    let bundle = Bundle::load_with(source(), Some(&runtime)).unwrap();
    let log = logged(|| assert!(read_with(&bundle, "read", context()).allowed));
    assert!(log.contains("chatty"), "the line names its rule: {log}");
    assert!(log.contains("retry with Bearer"), "the line is kept: {log}");
    assert!(log.contains(&redactor.digest("s3cr3t-token-abc")), "the token as its digest: {log}");
    assert!(log.contains(&redactor.digest("hunter2")), "the password as its digest: {log}");
    assert!(!log.contains("s3cr3t") && !log.contains("hunter2"), "{log}");

    let runtime = RuleRuntime::new(None, None).unwrap();
    let bundle = Bundle::load_with(source(), Some(&runtime)).unwrap();
    let log = logged(|| assert!(read_with(&bundle, "read", context()).allowed));
    assert!(log.contains("retry with Bearer hmac-sha256:"), "{log}");
    assert!(!log.contains("s3cr3t") && !log.contains("hunter2"), "{log}");
}

/// A line longer than the host scans is cut at a space before it is
/// redacted, so the cut never leaves the head of a secret unrecognised: here
/// a private key block (redacted to a few bytes, so what follows it shows)
/// pushes a JWT across the scanned length (16 KiB of `{"note":"…`), at
/// offsets from its first byte to its last.
#[test]
fn a_rules_overlong_log_line_is_cut_at_a_space_then_redacted() {
    let bundle = load(&bundle_dir(&[("chatty", "log-context", json!({"mode": "observe"}))]));
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl";
    for pad in (16_272..=16_320).step_by(4) {
        let key = format!("-----BEGIN PRIVATE KEY-----{}-----END PRIVATE KEY-----", "A".repeat(pad));
        let context = Map::from_iter([("note".to_owned(), json!(format!("{key} {jwt} tail")))]);
        let log = logged(|| assert!(read_with(&bundle, "read", context).allowed));
        assert!(log.contains("chatty") && log.contains("[REDACTED]"), "{log}");
        assert!(!log.contains("eyJhbG") && !log.contains("AAAA"), "pad {pad}: {log}");
        assert!(log.len() < 2_048, "one line of at most 1 KiB: {} bytes", log.len());
    }
}

#[test]
fn components_are_compiled_once_and_then_read_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = bundle_dir(&[("says-no", "deny", json!({})), ("boom", "trap", json!({}))]);
    const KEY: &[u8] = b"the-cache-key-the-service-derives";
    let keyed = || RuleRuntime::with_cache_key(Some(cache.path().to_owned()), None, KEY).unwrap();
    let runtime = keyed();
    let source = || warrant_engine::BundleSource::read_dir(dir.path()).unwrap();

    let first = Bundle::load_with(source(), Some(&runtime)).unwrap();
    assert_eq!(first.rules().load_report().compiled, 2);
    let again = Bundle::load_with(source(), Some(&runtime)).unwrap();
    assert_eq!(again.rules().load_report().from_memory, 2, "a reload with the same components compiles nothing");

    let restarted = keyed();
    let from_disk = Bundle::load_with(source(), Some(&restarted)).unwrap();
    assert_eq!(from_disk.rules().load_report().from_disk, 2, "a new process reads the precompiled artifacts");
    assert_eq!(read(&from_disk, "read").reasons, ["fixture_says_no", "rule_error:boom"]);

    // Swapping one rule's artifact for the other's (both genuine compiler
    // output, the swap of issue 19 row 9) is found by the tag: the deny
    // rule is compiled again, never run as the trapping one.
    let artifacts: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");
    let (a, b) = (std::fs::read(&artifacts[0]).unwrap(), std::fs::read(&artifacts[1]).unwrap());
    std::fs::write(&artifacts[0], &b).unwrap();
    std::fs::write(&artifacts[1], &a).unwrap();
    let restarted = keyed();
    let swapped = Bundle::load_with(source(), Some(&restarted)).unwrap();
    assert_eq!(swapped.rules().load_report().compiled, 2);
    assert_eq!(read(&swapped, "read").reasons, ["fixture_says_no", "rule_error:boom"]);
    // Another key (another deployment, or `new`'s random one) does not
    // trust these artifacts: it compiles again.
    let other = RuleRuntime::with_cache_key(Some(cache.path().to_owned()), None, b"another-key").unwrap();
    assert_eq!(Bundle::load_with(source(), Some(&other)).unwrap().rules().load_report().compiled, 2);

    // A corrupt artifact is not trusted either.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let restarted = keyed();
    let recompiled = Bundle::load_with(source(), Some(&restarted)).unwrap();
    assert_eq!(recompiled.rules().load_report().compiled, 2);
    assert_eq!(read(&recompiled, "read").reasons, ["fixture_says_no", "rule_error:boom"]);
}

/// A cache directory others can write to, or another user owns, is refused
/// (issue 19, row 9): whoever writes there would choose the native code run.
#[test]
fn a_cache_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = RuleRuntime::new(Some(cache.path().to_owned()), None).unwrap_err();
    assert!(refused.to_string().contains("writable by others (mode 777)"), "{refused}");
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(RuleRuntime::new(Some(cache.path().to_owned()), None).is_ok());
}

#[test]
fn rules_are_part_of_the_bundle_digest_and_survive_the_text_form() {
    let dir = bundle_dir(&[("says-no", "deny", json!({}))]);
    let source = warrant_engine::BundleSource::read_dir(dir.path()).unwrap();
    let round_trip = warrant_engine::BundleSource::from_files(source.to_files()).unwrap();
    assert_eq!(round_trip, source);
    let with_rule = source.digest();

    std::fs::write(dir.path().join("rules/deny.wasm"), fixture("trap")).unwrap();
    let changed = warrant_engine::BundleSource::read_dir(dir.path()).unwrap().digest();
    assert_ne!(with_rule, changed, "a different component is a different bundle");
}
