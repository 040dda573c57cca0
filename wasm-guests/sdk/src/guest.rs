//! The component glue: wit-bindgen bindings for `../wit` and the conversion
//! between their types and the SDK's. Compiled only on `wasm32`.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use crate::{EntityRef, Rule, Verdict};

#[allow(unsafe_code, reason = "wit-bindgen's canonical ABI glue")]
#[allow(missing_debug_implementations, reason = "generated types")]
#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "rule",
        pub_export_macro: true,
        default_bindings_module: "::warrant_rule_sdk::__private::bindings",
        runtime_path: "::warrant_rule_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::warrant::rule::types as wit;

thread_local! {
    /// The last configuration parsed, keyed by its JSON text. One instance
    /// serves one manifest entry, so on a warm instance this parses once.
    static CONFIG: RefCell<Option<(String, Rc<dyn Any>)>> = const { RefCell::new(None) };
}

/// The `evaluate` export for rule `R`.
pub fn evaluate<R: Rule>(config_json: String, req: wit::Request) -> wit::Verdict {
    let principal = entity(req.principal);
    let action = entity(req.action);
    let resource = entity(req.resource);
    let verdict = match cached_config::<R>(config_json) {
        Some(config) => crate::evaluate_parsed::<R>(&config, principal, action, resource, &req.context_json),
        None => Verdict::deny(crate::INVALID_CONFIG),
    };
    let (effect, reason) = verdict.into_parts();
    wit::Verdict {
        effect: match effect {
            crate::Effect::Allow => wit::Effect::Allow,
            crate::Effect::Deny => wit::Effect::Deny,
            crate::Effect::Abstain => wit::Effect::Abstain,
        },
        reason,
    }
}

/// The parsed configuration, from the cache when `config_json` is the text
/// parsed last time. `None` (after logging why) when it does not parse.
fn cached_config<R: Rule>(config_json: String) -> Option<Rc<R::Config>> {
    let hit = CONFIG.with(|cache| {
        let cache = cache.borrow();
        let (text, config) = cache.as_ref()?;
        if *text != config_json {
            return None;
        }
        Rc::clone(config).downcast::<R::Config>().ok()
    });
    if hit.is_some() {
        return hit;
    }
    match crate::parse_config::<R::Config>(&config_json) {
        Ok(config) => {
            let config = Rc::new(config);
            let erased: Rc<dyn Any> = Rc::clone(&config) as Rc<dyn Any>;
            CONFIG.with(|cache| *cache.borrow_mut() = Some((config_json, erased)));
            Some(config)
        }
        Err(err) => {
            crate::log(&format!("{}: {err}", crate::INVALID_CONFIG));
            None
        }
    }
}

fn entity(e: wit::EntityRef) -> EntityRef {
    EntityRef::new(e.type_name, e.id)
}
