//! A request's context on its way to Cedar: completed from what the schema
//! declares (`declared.rs`: `now` filled in, datetimes normalised) and, in
//! the common case, built directly instead of through Cedar's JSON parser.

use cedar_policy::{Context, RestrictedExpression};
use serde_json::{Map, Value};

use super::declared::ContextShape;
use crate::time::{self, Timestamp};

/// A Cedar context built directly from JSON scalars: strings (as datetimes
/// for the schema's datetime keys), booleans and integers. `None` for
/// anything else (records, sets, entity references, extension values, other
/// numbers): the caller parses those through Cedar's JSON path.
///
/// The last few contexts built are kept per thread: most requests carry only
/// `now`, which concurrent requests share at millisecond precision, and
/// evaluating `datetime("…")` (Cedar's regex parse) is the larger part of
/// building one.
pub(super) fn fast_context(context: &Map<String, Value>, datetime_keys: Option<&[String]>) -> Option<Context> {
    const KEEP: usize = 4;
    type Built = (Map<String, Value>, Vec<String>, Context);
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<Built>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let datetime_keys = datetime_keys.unwrap_or_default();
    let hit = RECENT.with_borrow(|recent| {
        recent.iter().find(|(m, k, _)| m == context && k.as_slice() == datetime_keys).map(|(_, _, c)| c.clone())
    });
    if hit.is_some() {
        return hit;
    }
    let built = build_context(context, datetime_keys)?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((context.clone(), datetime_keys.to_vec(), built.clone()));
    });
    Some(built)
}

fn build_context(context: &Map<String, Value>, datetime_keys: &[String]) -> Option<Context> {
    let mut pairs = Vec::with_capacity(context.len());
    for (key, value) in context {
        let expr = match value {
            Value::String(s) if datetime_keys.iter().any(|k| k == key) => datetime(s),
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
            _ => return None,
        };
        pairs.push((key.clone(), expr));
    }
    Context::from_pairs(pairs).ok()
}

/// `datetime("text")`. cedar-policy's `RestrictedExpression::new_datetime`
/// parses the name `datetime` with its LALRPOP parser on every call (a lexer
/// and a lazy DFA built each time: about 7% of an HTTP decision in
/// profiles), so the last few per thread are kept: concurrent requests share
/// `now` at millisecond precision.
fn datetime(text: &str) -> RestrictedExpression {
    const KEEP: usize = 4;
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(String, RestrictedExpression)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, expr)) = recent.iter().find(|(t, _)| t == text) {
            return expr.clone();
        }
        let expr = RestrictedExpression::new_datetime(text);
        if recent.len() >= KEEP {
            recent.remove(0);
        }
        recent.push((text.to_owned(), expr.clone()));
        expr
    })
}

/// `given` with `now` filled in (when the action takes one and the caller
/// left it out) and datetimes normalised to Cedar's spelling.
pub(super) fn complete_context(
    shape: Option<&ContextShape>,
    mut context: Map<String, Value>,
    now: Timestamp,
) -> Map<String, Value> {
    if let Some(shape) = shape {
        if shape.takes_now && !context.contains_key("now") {
            context.insert("now".into(), Value::String(now.to_string()));
        }
        for key in &shape.datetime_keys {
            if let Some(Value::String(text)) = context.get(key)
                && let Some(normal) = time::normalize(text)
            {
                context.insert(key.clone(), Value::String(normal));
            }
        }
    }
    context
}
