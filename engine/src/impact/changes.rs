//! What differs between two policy sets, as evaluation sees it.
//!
//! Two policies mean the same when their JSON form (Cedar's EST) is equal
//! once annotations are left out: the scope and conditions decide whether a
//! policy holds, and an annotation only renames it (`@id`) or words its
//! deny reason (`@reason`). A linked policy means its template's text with
//! its links. So moving a policy to another file, renumbering it,
//! reformatting it or rewording its reason changes nothing here, and a
//! policy one bundle has and the other lacks is a change (a text that
//! differs but means the same is also one: the comparison decides those
//! requests and finds no flip).
//!
//! Matching is a multiset: a policy written twice in one bundle and once
//! in the other leaves one change.

use std::collections::{BTreeSet, HashMap};

use cedar_policy::{Entities, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint};
use serde_json::Value;

/// Every policy's meaning in a set, by id (see the module documentation).
pub(super) fn meanings(policies: &PolicySet) -> HashMap<PolicyId, String> {
    let templates: HashMap<&PolicyId, String> =
        policies.templates().filter_map(|t| Some((t.id(), unannotated(t.to_json().ok()?)))).collect();
    policies
        .policies()
        .filter_map(|policy| {
            let meaning = match policy.template_id() {
                Some(template) => {
                    let mut links: Vec<(String, String)> = policy
                        .template_links()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(slot, uid)| (slot.to_string(), uid.to_string()))
                        .collect();
                    links.sort();
                    format!("{}|{links:?}", templates.get(template)?)
                }
                None => unannotated(policy.to_json().ok()?),
            };
            Some((policy.id().clone(), meaning))
        })
        .collect()
}

fn unannotated(mut est: Value) -> String {
    if let Some(map) = est.as_object_mut() {
        map.remove("annotations");
    }
    est.to_string()
}

/// The policies of one action's slice that the other bundle's slice does
/// not match: (the before bundle's, the after bundle's), each by id.
pub(super) fn unmatched(
    before: &PolicySet,
    before_meanings: &HashMap<PolicyId, String>,
    after: &PolicySet,
    after_meanings: &HashMap<PolicyId, String>,
) -> (Vec<PolicyId>, Vec<PolicyId>) {
    let mut left: HashMap<&str, Vec<&PolicyId>> = HashMap::new();
    for policy in before.policies() {
        let meaning = before_meanings.get(policy.id()).map_or("", String::as_str);
        left.entry(meaning).or_default().push(policy.id());
    }
    let mut added = Vec::new();
    for policy in after.policies() {
        let meaning = after_meanings.get(policy.id()).map_or("", String::as_str);
        // A policy whose meaning could not be written out is always a change.
        match left.get_mut(meaning).filter(|_| !meaning.is_empty()).and_then(Vec::pop) {
            Some(_) => {}
            None => added.push(policy.id().clone()),
        }
    }
    let mut removed: Vec<PolicyId> = left.into_values().flatten().cloned().collect();
    removed.sort_by_key(ToString::to_string);
    added.sort_by_key(ToString::to_string);
    (removed, added)
}

/// A set of the given policies, with the templates linked ones need.
pub(super) fn subset(from: &PolicySet, ids: &[PolicyId]) -> PolicySet {
    let mut set = PolicySet::new();
    for id in ids {
        let Some(policy) = from.policy(id) else { continue };
        if let Some(template) = policy.template_id().and_then(|t| from.template(t))
            && set.template(template.id()).is_none()
        {
            // Ids are unique in `from`, so neither add can fail.
            let _ = set.add_template(template.clone());
        }
        let _ = set.add(policy.clone());
    }
    set
}

/// Whether `principal` can satisfy the principal scope of any of
/// `policies`: a policy scoped to other principals can never hold for it
/// (nor error: Cedar checks the scope first).
pub(super) fn in_any_scope<'p>(
    mut policies: impl Iterator<Item = &'p Policy>,
    principal: &EntityUid,
    entities: &Entities,
) -> bool {
    let within = |group: &EntityUid| {
        group == principal || entities.ancestors(principal).is_some_and(|mut a| a.any(|g| g == group))
    };
    policies.any(|policy| match policy.principal_constraint() {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Eq(uid) => uid == *principal,
        PrincipalConstraint::In(group) => within(&group),
        PrincipalConstraint::Is(ty) => ty == *principal.type_name(),
        PrincipalConstraint::IsIn(ty, group) => ty == *principal.type_name() && within(&group),
    })
}

/// The context keys `policies` read (`context.k`, `context has k`); `*`
/// when one reads the context otherwise (whole, or compared).
pub(super) fn context_keys<'p>(policies: impl Iterator<Item = &'p Policy>, templates: &PolicySet) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for policy in policies {
        let est = match policy.template_id().and_then(|t| templates.template(t)) {
            Some(template) => template.to_json().ok(),
            None => policy.to_json().ok(),
        };
        if let Some(est) = est {
            let (mut named, mut uses) = (0, 0);
            walk(&est, &mut keys, &mut named, &mut uses);
            if uses > named {
                keys.insert("*".to_owned());
            }
        }
    }
    keys
}

fn is_context(value: &Value) -> bool {
    value.get("Var").and_then(Value::as_str) == Some("context")
}

/// Collects `context.k` and `context has k`, counting them (`named`) and
/// every mention of `context` (`uses`).
fn walk(value: &Value, keys: &mut BTreeSet<String>, named: &mut usize, uses: &mut usize) {
    match value {
        Value::Object(map) => {
            if is_context(value) {
                *uses += 1;
            }
            for op in [".", "has"] {
                if let Some(access) = map.get(op)
                    && access.get("left").is_some_and(is_context)
                    && let Some(attr) = access.get("attr").and_then(Value::as_str)
                {
                    keys.insert(attr.to_owned());
                    *named += 1;
                }
            }
            map.values().for_each(|v| walk(v, keys, named, uses));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, keys, named, uses)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn set(text: &str) -> PolicySet {
        PolicySet::from_str(text).expect("parses")
    }

    #[test]
    fn annotations_layout_and_order_mean_nothing() {
        let before = set(r#"@reason("old") forbid(principal, action, resource) when { principal.x == 1 };
               permit(principal, action, resource);"#);
        let after = set(r#"permit(principal,action,resource);
               @id("renamed") @reason("new")
               forbid(principal, action, resource)
               when {
                 principal.x == 1
               };"#);
        let (removed, added) = unmatched(&before, &meanings(&before), &after, &meanings(&after));
        assert!(removed.is_empty() && added.is_empty(), "{removed:?} {added:?}");
    }

    #[test]
    fn a_changed_condition_or_effect_or_duplicate_is_a_change() {
        let before = set("permit(principal, action, resource) when { principal.x == 1 };");
        let after = set("permit(principal, action, resource) when { principal.x == 2 };
             forbid(principal, action, resource) when { principal.x == 1 };
             forbid(principal, action, resource) when { principal.x == 1 };");
        let (removed, added) = unmatched(&before, &meanings(&before), &after, &meanings(&after));
        assert_eq!(removed.len(), 1);
        assert_eq!(added.len(), 3);
    }

    #[test]
    fn context_keys_read_are_named_and_other_uses_are_a_star() {
        let policies =
            set(r#"permit(principal, action, resource) when { context has surface && context.surface == "app" };
               permit(principal, action, resource) when { context.now > context.since };"#);
        let keys = context_keys(policies.policies(), &policies);
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["now", "since", "surface"]);
        let whole = set(r#"permit(principal, action, resource) when { context == {} };"#);
        assert!(context_keys(whole.policies(), &whole).contains("*"));
    }
}
