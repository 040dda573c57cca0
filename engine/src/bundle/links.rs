//! `links.json`: policies made from templates. A template is a policy in a
//! `.cedar` file with `?principal` and/or `?resource` slots; each link names
//! the template by its `@id`, gives the linked policy its own id, and fills
//! every slot with an entity:
//!
//! ```json
//! [{"id": "alice-reads-p1", "template": "project-reader",
//!   "values": {"?principal": {"type": "Analytics::User", "id": "alice"},
//!              "?resource": {"type": "Analytics::Project", "id": "p1"}}}]
//! ```
//!
//! A linked policy decides like a static one: it is validated through its
//! template, reported by its own id, and carries the template's effect and
//! `@reason`.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, SlotId};
use serde::Deserialize;

use crate::cedar::cedar_message;
use crate::decide::PolicyFacts;
use crate::diagnostic::Diagnostic;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    id: String,
    template: String,
    values: BTreeMap<String, Slot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slot {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
}

/// Links every entry of `links.json` (`text`, at `path`) into `policies`,
/// recording each linked policy's facts; problems become diagnostics.
pub(super) fn link_all(
    path: &str,
    text: &str,
    policies: &mut PolicySet,
    facts: &mut HashMap<PolicyId, PolicyFacts>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let links: Vec<Link> = match serde_json::from_str(text) {
        Ok(links) => links,
        Err(e) => {
            let mut d = Diagnostic::file(path, format!("expected a JSON array of template links: {e}"));
            d.line = Some(e.line());
            d.column = Some(e.column());
            diagnostics.push(d);
            return;
        }
    };
    for (index, link) in links.into_iter().enumerate() {
        let problem = |message: String| Diagnostic::file(path, format!("link {index} (`{}`): {message}", link.id));
        let template_id = PolicyId::new(&link.template);
        let Some(template) = policies.template(&template_id) else {
            diagnostics.push(problem(format!("no template has `@id(\"{}\")`", link.template)));
            continue;
        };
        let template_facts =
            PolicyFacts { effect: template.effect(), reason: template.annotation("reason").map(str::to_owned) };
        let mut values = HashMap::new();
        let mut bad = false;
        for (name, slot) in &link.values {
            let slot_id = match name.as_str() {
                "?principal" => SlotId::principal(),
                "?resource" => SlotId::resource(),
                other => {
                    diagnostics.push(problem(format!("unknown slot `{other}`: use `?principal` or `?resource`")));
                    bad = true;
                    continue;
                }
            };
            match EntityTypeName::from_str(&slot.type_name) {
                Ok(ty) => {
                    values.insert(slot_id, EntityUid::from_type_name_and_id(ty, EntityId::new(&slot.id)));
                }
                Err(e) => {
                    diagnostics.push(problem(format!("`{}` is not an entity type name: {e}", slot.type_name)));
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        let id = PolicyId::new(&link.id);
        match policies.link(template_id, id.clone(), values) {
            Ok(()) => {
                facts.insert(id, template_facts);
            }
            Err(e) => diagnostics.push(problem(cedar_message(&e))),
        }
    }
}
