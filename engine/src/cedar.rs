//! Helpers for talking to `cedar-policy` that no single concept owns: its
//! errors turned into our one-line messages, and entity uids built from the
//! type names resolved once per bundle.

use cedar_policy::{EntityId, EntityTypeName, EntityUid};

/// Cedar's message, the causes under it and its help, on one line.
pub(crate) fn cedar_message(e: &dyn miette::Diagnostic) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    if let Some(help) = e.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    message
}

/// The uid of entity `id` of type `ty`, without re-parsing the type name.
pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}
