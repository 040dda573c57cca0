//! Request shapes Cedar's request validation has accepted, kept per bundle.
//!
//! Cedar checks a request against the schema by copying its context into a
//! partial value, twice, and typechecking every attribute: a twentieth of
//! the server's CPU in a revealing credential resolution (three decisions;
//! perf at 64 connections). For a context of scalars only, the fast path of
//! `context.rs`, what that check decides depends on nothing but the action,
//! the principal's and the resource's types, and each key's kind: any
//! string is a `String`, any `i64` a `Long`, any datetime value a
//! `datetime`. So a shape once accepted is accepted again without asking.
//!
//! Asked of Cedar every time: a shape not seen accepted yet, a context that
//! is not all scalars (it takes the JSON path), and an enumerated principal
//! or resource type, whose ids validation checks one by one. A refusal is
//! never kept, so every error is Cedar's own.
//!
//! Bounded: at [`MAX`] shapes the set starts afresh.

use std::collections::HashSet;
use std::sync::Mutex;

use cedar_policy::{EntityTypeName, EntityUid};
use serde_json::{Map, Value};

/// Shapes kept at most.
const MAX: usize = 4096;

/// What Cedar sees of a context value, for its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    String,
    Datetime,
    Long,
    Bool,
}

/// Everything request validation reads of a request with a scalar context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    action: EntityUid,
    principal: EntityTypeName,
    resource: EntityTypeName,
    /// In the context's key order (serde_json's maps are sorted).
    keys: Vec<(String, Kind)>,
}

impl Shape {
    /// The shape of a request whose context `context` the fast path built
    /// (`datetime_keys` as it read them); `None` when its values are not all
    /// scalars, which the fast path refuses too.
    pub(crate) fn of(
        action: &EntityUid,
        principal: &EntityTypeName,
        resource: &EntityTypeName,
        context: &Map<String, Value>,
        datetime_keys: &[String],
    ) -> Option<Self> {
        let mut keys = Vec::with_capacity(context.len());
        for (key, value) in context {
            let kind = match value {
                Value::String(_) if datetime_keys.iter().any(|k| k == key) => Kind::Datetime,
                Value::String(_) => Kind::String,
                Value::Bool(_) => Kind::Bool,
                Value::Number(n) if n.as_i64().is_some() => Kind::Long,
                _ => return None,
            };
            keys.push((key.clone(), kind));
        }
        Some(Self { action: action.clone(), principal: principal.clone(), resource: resource.clone(), keys })
    }
}

#[derive(Default)]
pub(crate) struct ConformingShapes {
    accepted: Mutex<HashSet<Shape>>,
}

impl std::fmt::Debug for ConformingShapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.accepted.lock().map_or(0, |k| k.len());
        f.debug_struct("ConformingShapes").field("kept", &kept).finish()
    }
}

impl ConformingShapes {
    /// Whether Cedar accepted a request of this shape before.
    pub(crate) fn accepted(&self, shape: &Shape) -> bool {
        self.accepted.lock().is_ok_and(|a| a.contains(shape))
    }

    /// Keeps a shape Cedar has just accepted.
    pub(crate) fn keep(&self, shape: Shape) {
        if let Ok(mut accepted) = self.accepted.lock() {
            if accepted.len() >= MAX {
                accepted.clear();
            }
            accepted.insert(shape);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::str::FromStr as _;

    use serde_json::json;

    use super::*;

    fn action() -> EntityUid {
        EntityUid::from_str(r#"N::Action::"read""#).unwrap()
    }

    fn user() -> EntityTypeName {
        EntityTypeName::from_str("N::User").unwrap()
    }

    fn doc() -> EntityTypeName {
        EntityTypeName::from_str("N::Doc").unwrap()
    }

    fn shape(context: Value) -> Option<Shape> {
        Shape::of(&action(), &user(), &doc(), context.as_object().unwrap(), &["now".to_owned()])
    }

    #[test]
    fn a_shape_is_the_keys_and_their_kinds_not_the_values() {
        let a = shape(json!({"now": "2026-01-01T00:00:00Z", "label": "x", "level": 3, "flag": true}));
        let b = shape(json!({"now": "2027-01-01T00:00:00Z", "label": "y", "level": -9, "flag": false}));
        assert_eq!(a, b);
        assert!(a.is_some());
        // The same keys with another kind are another shape.
        assert_ne!(a, shape(json!({"now": "2026-01-01T00:00:00Z", "label": 3, "level": 3, "flag": true})));
        assert_ne!(a, shape(json!({"now": "2026-01-01T00:00:00Z", "label": "x", "level": "3", "flag": true})));
        // A string under a datetime key is not a plain string.
        let plain = Shape::of(&action(), &user(), &doc(), json!({"now": "x"}).as_object().unwrap(), &[]);
        assert_ne!(shape(json!({"now": "x"})), plain);
        // Not scalars: no shape.
        assert_eq!(shape(json!({"level": 2.5})), None);
        assert_eq!(shape(json!({"tags": ["a"]})), None);
    }

    #[test]
    fn only_what_was_kept_is_accepted_and_the_set_stays_bounded() {
        let shapes = ConformingShapes::default();
        let one = shape(json!({"label": "x"})).unwrap();
        assert!(!shapes.accepted(&one));
        shapes.keep(one.clone());
        assert!(shapes.accepted(&one));
        assert!(!shapes.accepted(&shape(json!({"label": true})).unwrap()));
        for i in 0..MAX + 10 {
            shapes.keep(shape(json!({ format!("k{i}"): 1 })).unwrap());
        }
        assert!(shapes.accepted.lock().unwrap().len() <= MAX);
    }
}
