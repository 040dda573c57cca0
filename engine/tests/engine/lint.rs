//! What strict validation accepts but a bundle's author did not mean:
//! policies that can never apply and conditions that can never hold, with
//! their severity (a missing protection is an error), and syntax errors
//! reported once, with what Cedar expected.

use std::collections::BTreeMap;
use std::path::Path;

use warrant_engine::{Bundle, BundleSource, Diagnostic};

const SCHEMA: &str = r#"entity User = { admin?: Bool };
entity Team;
entity Doc = { owner: User, public?: Bool, locked?: Bool };
action read appliesTo { principal: User, resource: Doc };
action manage appliesTo { principal: User, resource: Team };
"#;

fn load(policies: &str) -> Result<Bundle, Vec<Diagnostic>> {
    let files: BTreeMap<String, String> =
        [("s.cedarschema", SCHEMA), ("p.cedar", policies)].iter().map(|(p, t)| ((*p).into(), (*t).into())).collect();
    Bundle::load(BundleSource::from_files(files).unwrap()).map_err(|e| e.diagnostics())
}

/// The one error `policies` is refused with.
fn refused(policies: &str) -> Diagnostic {
    match load(policies) {
        Ok(b) => panic!("loaded, with warnings {:?}", b.warnings()),
        Err(d) => {
            assert_eq!(d.len(), 1, "{d:#?}");
            d.into_iter().next().unwrap()
        }
    }
}

/// The warnings of a bundle that loads.
fn warned(policies: &str) -> Vec<Diagnostic> {
    match load(policies) {
        Ok(b) => b.warnings().to_vec(),
        Err(d) => panic!("refused: {d:#?}"),
    }
}

fn at(d: &Diagnostic) -> (Option<usize>, Option<usize>) {
    (d.line, d.column)
}

const HAS_TYPO: &str = r#"@id("ok") permit (principal, action == Action::"read", resource) when { resource.owner == principal };
@id("owner-only")
forbid (principal, action == Action::"read", resource)
when { resource has ownr && resource.ownr != principal };
"#;

/// The same typo in the `has` test and the access it guards: Cedar types
/// the `has` false and never looks at the access, so validation passes.
#[test]
fn a_forbid_guarded_by_a_misspelt_has_is_refused_where_the_typo_is() {
    let d = refused(HAS_TYPO);
    assert_eq!(d.file, "p.cedar");
    assert_eq!(at(&d), (Some(4), Some(8)), "at `resource has ownr`: {d}");
    assert!(d.message.starts_with("forbid `owner-only` can never apply"), "{d}");
    assert!(d.message.contains("`resource has ownr` is always false"), "{d}");
    assert!(d.message.contains("no attribute `ownr`"), "{d}");
}

#[test]
fn a_forbid_whose_types_no_action_applies_to_is_refused() {
    let d = refused(
        "@id(\"ok\") permit (principal, action, resource);\n\n@id(\"teams\")\nforbid (principal, action == Action::\"read\", resource is Team);\n",
    );
    assert_eq!(at(&d), (Some(3), Some(1)), "where the policy starts: {d}");
    assert!(d.message.starts_with("forbid `teams` can never apply"), "{d}");
    assert!(d.message.contains("appliesTo"), "{d}");
}

#[test]
fn a_forbid_when_false_is_refused() {
    let d = refused(
        "@id(\"ok\") permit (principal, action, resource);\n@id(\"off\") forbid (principal, action, resource)\nwhen { false };\n",
    );
    assert_eq!(at(&d), (Some(3), Some(8)), "{d}");
    assert!(d.message.starts_with("forbid `off` can never apply"), "{d}");
    assert!(d.message.contains("a condition is the literal `false`"), "{d}");
}

/// A permit that never applies only denies what it meant to allow: a
/// warning, located, and the bundle loads.
#[test]
fn the_same_mistakes_in_permits_are_warnings() {
    let policies = "@id(\"typo\") permit (principal, action == Action::\"read\", resource)\nwhen { resource has ownr && resource.ownr == principal };\n\
                    @id(\"teams\") permit (principal, action == Action::\"read\", resource is Team);\n\
                    @id(\"off\") permit (principal, action, resource) when { false };\n";
    let warnings = warned(policies);
    let found: Vec<(Option<usize>, &str)> =
        warnings.iter().map(|w| (w.line, w.message.split(':').next().unwrap_or_default())).collect();
    assert_eq!(
        found,
        [
            (Some(2), "permit `typo` can never apply"),
            (Some(3), "permit `teams` can never apply"),
            (Some(4), "permit `off` can never apply")
        ],
        "{warnings:#?}"
    );
}

/// A condition that can never hold in a policy that can still apply: an
/// error where it was a protection (a forbid's `when`, a permit's
/// `unless`), a warning where it could only have allowed more.
#[test]
fn dead_conditions_are_errors_where_they_were_protections() {
    let d = refused(
        "@id(\"locked\") forbid (principal, action == Action::\"read\", resource)\nwhen { resource has lockd || resource.owner != principal };\n",
    );
    assert_eq!(at(&d), (Some(2), Some(8)), "{d}");
    assert!(d.message.contains("in forbid `locked`, `resource has lockd` is always false"), "{d}");
    assert!(d.message.contains("`when` can never match"), "{d}");

    let d = refused(
        "@id(\"unless-locked\") permit (principal, action == Action::\"read\", resource)\nunless { resource has lockd && resource.lockd };\n",
    );
    assert!(d.message.contains("in permit `unless-locked`, `resource has lockd` is always false"), "{d}");
    assert!(d.message.contains("`unless` never excepts anything"), "{d}");

    let w = warned(
        "@id(\"public\") permit (principal, action == Action::\"read\", resource)\nwhen { resource has publik || resource.owner == principal };\n\
         @id(\"no-admins\") forbid (principal, action == Action::\"read\", resource)\nunless { principal has admn && principal.admn };\n",
    );
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w[0].message.contains("in permit `public`, `resource has publik`"), "{w:#?}");
    assert!(w[1].message.contains("in forbid `no-admins`, `principal has admn`"), "{w:#?}");
    assert_eq!(at(&w[1]), (Some(4), Some(10)));
}

/// Cedar's other validation warnings are passed on, as warnings.
#[test]
fn cedars_own_warnings_are_passed_on() {
    // A Cyrillic `а` among Latin letters.
    let w = warned("@id(\"mixed\") permit (principal, action, resource) when { \"p\u{430}ypal\" like \"p*\" };\n");
    assert!(w.iter().any(|w| w.message.contains("`mixed`") && w.file == "p.cedar"), "{w:#?}");
}

#[test]
fn the_policy_pack_has_no_findings() {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let bundle = Bundle::load_dir(&pack).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics()));
    assert!(bundle.warnings().is_empty(), "{:#?}", bundle.warnings());
}

/// Cedar puts what it expected in a label; the message carries it.
#[test]
fn a_syntax_error_says_what_was_expected() {
    let d = refused("@id(\"a\")\npermit (principal, action, resource)\nwhen { principal.admin == };\n");
    assert_eq!(at(&d), (Some(3), Some(27)));
    assert!(d.message.starts_with("unexpected token `}`: expected "), "{d}");
    assert!(d.message.contains("`true`") && d.message.contains("identifier"), "{d}");
}

/// After a syntax error the parser resynchronises and may report a second
/// error on a correct line: only the first is reported, and nothing else
/// is validated.
#[test]
fn a_typo_yields_exactly_one_diagnostic() {
    let typo = "@id(\"a\")\npermit (principal, action, resource)\nwhen { principal.admin == true &&\n  context{debug: true}\n};\n\
                @id(\"b\") forbid (principal, action, resource) when { principal.nope };\n";
    let d = refused(typo);
    assert_eq!(at(&d), (Some(4), Some(10)), "{d}");
    assert!(d.message.contains("unexpected token `{`"), "{d}");
}

/// A missing `;` shows up at the next policy; the message says so.
#[test]
fn a_missing_semicolon_is_pointed_out() {
    let d = refused(
        "@id(\"a\") permit (principal, action, resource)\nwhen { principal.admin == true }\n\nforbid (principal, action, resource);\n",
    );
    assert!(d.message.contains("`;`"), "{d}");
}

/// A template's findings are its own; a link's (its slots filled with
/// types no action applies to) are reported where `links.json` names it.
#[test]
fn templates_and_links_are_linted_where_they_are_written() {
    let templates = "@id(\"ban\")\nforbid (principal == ?principal, action == Action::\"read\", resource)\nwhen { resource has ownr };\n";
    let links = r#"[{"id": "ann-banned", "template": "ban", "values": {"?principal": {"type": "User", "id": "ann"}}}]"#;
    let load = |templates: &str, links: &str| {
        let files: BTreeMap<String, String> =
            [("s.cedarschema", SCHEMA), ("t.cedar", templates), ("links.json", links)]
                .iter()
                .map(|(p, t)| ((*p).into(), (*t).into()))
                .collect();
        Bundle::load(BundleSource::from_files(files).unwrap()).map_err(|e| e.diagnostics())
    };
    let d = load(templates, links).unwrap_err();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].file.as_str(), d[0].line, d[0].column), ("t.cedar", Some(3), Some(8)), "{d:#?}");
    assert!(d[0].message.starts_with("forbid `ban` can never apply"), "{d:#?}");

    let team = links.replace("\"User\", \"id\": \"ann\"", "\"Team\", \"id\": \"t\"");
    let d = load(&templates.replace("\nwhen { resource has ownr }", ""), &team).unwrap_err();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].file.as_str(), d[0].line), ("links.json", Some(1)), "{d:#?}");
    assert!(d[0].message.starts_with("forbid `ann-banned` can never apply"), "{d:#?}");
}

/// A policy another covers: redundant under the same effect, dead under a
/// forbid; located where it starts. Near misses are not reported.
#[test]
fn shadowed_policies_are_warnings_located_where_they_start() {
    let warnings = warned(
        r#"@id("any-read") permit (principal, action == Action::"read", resource);
@id("owner-read")
permit (principal, action == Action::"read", resource) when { resource.owner == principal };
@id("no-user-x") forbid (principal == User::"x", action, resource);
@id("x-reads")
permit (principal == User::"x", action == Action::"read", resource is Doc);
@id("locked") forbid (principal, action == Action::"read", resource) when { resource has locked && resource.locked };
@id("locked-again")
forbid (principal, action == Action::"read", resource) when { resource has locked && resource.locked };
@id("locked-public")
forbid (principal, action == Action::"read", resource) when { resource has public && resource.public };
"#,
    );
    let found: Vec<(Option<usize>, &str)> = warnings.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0].0, Some(2));
    assert!(found[0].1.starts_with("permit `owner-read` is redundant: permit `any-read` holds"), "{found:#?}");
    assert_eq!(found[1].0, Some(5));
    assert!(found[1].1.starts_with("permit `x-reads` can never allow: forbid `no-user-x` holds"), "{found:#?}");
    assert_eq!(found[2].0, Some(8));
    assert!(found[2].1.starts_with("forbid `locked-again` is redundant: forbid `locked` holds"), "{found:#?}");
}
