//! Syntax errors as people need them: located, saying what Cedar expected
//! there, and only the first of a file.
//!
//! Cedar puts the tokens it expected (`expected `)` or `,``) in the label
//! of an error's span, not in its message, so a one-line diagnostic built
//! from the message alone says `unexpected token` and nothing more. And
//! after a syntax error the parser resynchronises and may report a second
//! error on a line that is correct, a consequence of the first; only the
//! first error of a file is certain, so it is the only one reported.
//!
//! One mistake is common enough to name: a policy missing its final `;`
//! runs into the next one, whose `permit` or `forbid` Cedar reads as a
//! condition keyword, so the error points at the `(` after it.

use crate::diagnostic::Diagnostic;

/// `error` located in `file` (whose text is `text`), its message followed by
/// what the labels of its spans say (the expected tokens) when the message
/// does not already.
pub(super) fn located(file: &str, text: &str, error: &dyn miette::Diagnostic) -> Diagnostic {
    let mut diagnostic = Diagnostic::from_cedar(file, text, error);
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|l| l.offset());
    if let Some(offset) = offset
        && runs_into_the_next_policy(text, offset)
    {
        diagnostic.message.push_str(" (help: is the `;` that ends the policy before it missing?)");
    }
    let labels = error.labels().into_iter().flatten().filter_map(|l| l.label().map(str::to_owned));
    for label in labels {
        if !diagnostic.message.contains(&label) {
            diagnostic.message = match diagnostic.message.find(" (help: ") {
                // Expected tokens read best right after what was found.
                Some(at) => {
                    let (head, help) = diagnostic.message.split_at(at);
                    format!("{head}: {label}{help}")
                }
                None => format!("{}: {label}", diagnostic.message),
            };
        }
    }
    diagnostic
}

/// Whether the token at `offset` is the `(` of a `permit` or `forbid`
/// (that Cedar took for a condition keyword).
fn runs_into_the_next_policy(text: &str, offset: usize) -> bool {
    let (Some(before), Some(after)) = (text.get(..offset), text.get(offset..)) else { return false };
    let before = before.trim_end();
    after.starts_with('(')
        && ["permit", "forbid"].iter().any(|effect| {
            before.strip_suffix(effect).is_some_and(|rest| rest.ends_with(|c: char| c.is_whitespace() || c == '}'))
        })
}

/// The first of `errors` in `text` (by position; unlocated errors last),
/// located: the one a file's syntax errors are reported by.
pub(super) fn first<'e, E>(file: &str, text: &str, errors: impl IntoIterator<Item = &'e E>) -> Option<Diagnostic>
where
    E: miette::Diagnostic + 'e,
{
    errors
        .into_iter()
        .min_by_key(|e| e.labels().and_then(|mut labels| labels.next()).map_or(usize::MAX, |l| l.offset()))
        .map(|e| located(file, text, e))
}
