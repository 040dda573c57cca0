//! Each rule's configuration is probed when its bundle loads: a rule that
//! answers `invalid_config` (the guest SDK's convention) refuses the bundle
//! with a diagnostic naming the rule and carrying its log line, redacted.

use std::sync::Arc;

use serde_json::{Value, json};
use warrant_engine::rules::RuleRuntime;
use warrant_engine::{Bundle, BundleSource, RedactionConfig, Redactor};

const SCHEMA: &str = r#"
entity User;
entity Doc;
action read appliesTo { principal: User, resource: Doc, context: { note?: String } };
"#;

/// A rule that accepts only the configuration `{}`: any other it logs,
/// verbatim, and denies with `invalid_config`, as the SDK does.
const STRICT_CONFIG: &str = r#"
(component
  (import "warrant:rule/host@0.1.0" (instance $host (export "log" (func (param "msg" string)))))
  (core module $mem (memory (export "memory") 1))
  (core instance $memory (instantiate $mem))
  (core func $log (canon lower (func $host "log") (memory (core memory $memory "memory"))))
  (core instance $imports (export "log" (func $log)))
  (core module $m
    (import "env" "memory" (memory 1))
    (import "host" "log" (func $log (param i32 i32)))
    (global $heap (mut i32) (i32.const 4096))
    (data (i32.const 64) "invalid_config")
    (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (if (i32.eq (memory.grow (i32.add (i32.div_u (global.get $heap) (i32.const 65536)) (i32.const 1))) (i32.const -1))
          (then unreachable))))
      (local.get $p))
    (func (export "cabi_post_evaluate") (param i32) (global.set $heap (i32.const 4096)))
    (func (export "evaluate")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (if (i32.eq (local.get 1) (i32.const 2))
        (then
          ;; abstain
          (i32.store8 (i32.const 16) (i32.const 2))
          (i32.store8 (i32.const 20) (i32.const 0))
          (return (i32.const 16))))
      (call $log (local.get 0) (local.get 1))
      ;; deny, reason `invalid_config` at offset 64
      (i32.store8 (i32.const 16) (i32.const 1))
      (i32.store8 (i32.const 20) (i32.const 1))
      (i32.store (i32.const 24) (i32.const 64))
      (i32.store (i32.const 28) (i32.const 14))
      (i32.const 16)))
  (core instance $i (instantiate $m (with "env" (instance $memory)) (with "host" (instance $imports))))
  (type $entity-ref' (record (field "type-name" string) (field "id" string)))
  (export $entity-ref "entity-ref" (type $entity-ref'))
  (type $request' (record (field "principal" $entity-ref) (field "action" $entity-ref)
                          (field "resource" $entity-ref) (field "context-json" string)))
  (export $request "request" (type $request'))
  (type $effect' (enum "allow" "deny" "abstain"))
  (export $effect "effect" (type $effect'))
  (type $verdict' (record (field "effect" $effect) (field "reason" (option string))))
  (export $verdict "verdict" (type $verdict'))
  (func (export "evaluate") (param "config-json" string) (param "req" $request) (result $verdict)
    (canon lift (core func $i "evaluate") (memory (core memory $memory "memory")) (realloc (core func $i "cabi_realloc"))
      (post-return (core func $i "cabi_post_evaluate"))))
)
"#;

/// A bundle whose one rule, `strict`, runs [`STRICT_CONFIG`] with `config`
/// in `mode`.
fn bundle(config: &Value, mode: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("policies.cedar"), "permit (principal, action, resource);\n").unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/strict.wasm"), wat::parse_str(STRICT_CONFIG).unwrap()).unwrap();
    let manifest = json!({"version": 1, "rules": [
        {"name": "strict", "file": "strict.wasm", "actions": ["read"], "mode": mode, "config": config}
    ]});
    std::fs::write(dir.path().join("rules/manifest.json"), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    dir
}

fn load(dir: &tempfile::TempDir, runtime: &Arc<RuleRuntime>) -> Result<Bundle, Vec<String>> {
    let source = BundleSource::read_dir(dir.path()).unwrap();
    Bundle::load_with(source, Some(runtime)).map_err(|e| e.diagnostics().iter().map(ToString::to_string).collect())
}

#[test]
fn a_configuration_the_rule_accepts_loads() {
    let runtime = RuleRuntime::new(None, None).unwrap();
    let bundle = load(&bundle(&json!({}), "enforce"), &runtime).unwrap();
    assert_eq!(bundle.rules().names().collect::<Vec<_>>(), ["strict"]);
}

/// Refused at load rather than denying every request with `invalid_config`;
/// the rule's log line explains, redacted as every rule log line is.
#[test]
fn a_configuration_the_rule_rejects_refuses_the_bundle_naming_the_rule() {
    let redactor = Redactor::new(RedactionConfig::default(), b"test digest key").unwrap();
    let runtime = RuleRuntime::new(None, Some(redactor.clone())).unwrap();
    let config = json!({"max_age_dayz": 90, "note": "Bearer s3cr3t-token-abc"});
    for mode in ["enforce", "observe"] {
        let problems = load(&bundle(&config, mode), &runtime).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let problem = &problems[0];
        assert!(problem.starts_with("rules/manifest.json:"), "located in the manifest: {problem}");
        assert!(problem.contains("rule `strict` rejects its `config`"), "{problem}");
        assert!(problem.contains("`invalid_config`"), "{problem}");
        assert!(problem.contains("max_age_dayz"), "the rule's log line is the detail: {problem}");
        assert!(!problem.contains("s3cr3t"), "the detail is redacted: {problem}");
        assert!(problem.contains(&redactor.digest("s3cr3t-token-abc")), "{problem}");
    }
}
