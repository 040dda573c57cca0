//! The entity types a Cedar schema declares, read from its text. The engine
//! answers whether a type exists and which actions apply to it, not which
//! types there are; callers confirm each name found here with the engine
//! (`Bundle::has_entity_type`) before they use it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    /// A string literal (its text is never a declaration).
    Str,
    /// `::`
    PathSep,
    Punct(char),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek().is_some_and(|&(_, next)| next == '/') => {
                while chars.next_if(|&(_, next)| next != '\n').is_some() {}
            }
            '"' => {
                let mut escaped = false;
                for (_, next) in chars.by_ref() {
                    match next {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => break,
                        _ => {}
                    }
                }
                out.push(Token::Str);
            }
            ':' if chars.peek().is_some_and(|&(_, next)| next == ':') => {
                chars.next();
                out.push(Token::PathSep);
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = start + c.len_utf8();
                while let Some((at, next)) = chars.next_if(|&(_, next)| next.is_alphanumeric() || next == '_') {
                    end = at + next.len_utf8();
                }
                out.push(Token::Ident(text.get(start..end).unwrap_or_default()));
            }
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

/// Qualified names of the entity types `schema` (Cedar's human-readable
/// syntax) declares, in order: `entity A, B in [C] {…};` inside
/// `namespace N {…}` gives `N::A`, `N::B`. Declarations nested in braces
/// other than a namespace's (records, `appliesTo`) are not entity types.
pub fn entity_types(schema: &str) -> Vec<String> {
    let tokens = tokens(schema);
    let mut found = Vec::new();
    // INVARIANT: every open brace below `namespaces.len()` is a namespace's,
    // so a declaration is at namespace level when `depth == namespaces.len()`.
    let mut namespaces: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut pending_namespace = None;
    let mut at = 0;
    while let Some(&token) = tokens.get(at) {
        at += 1;
        match token {
            Token::Ident("namespace") if depth == namespaces.len() => {
                let mut path = Vec::new();
                while let Some(&Token::Ident(part)) = tokens.get(at) {
                    path.push(part);
                    at += 1;
                    if tokens.get(at) != Some(&Token::PathSep) {
                        break;
                    }
                    at += 1;
                }
                pending_namespace = Some(path.join("::"));
            }
            Token::Ident("entity") if depth == namespaces.len() => {
                while let Some(&Token::Ident(name)) = tokens.get(at) {
                    found.push(match namespaces.last() {
                        Some(namespace) => format!("{namespace}::{name}"),
                        None => name.to_owned(),
                    });
                    at += 1;
                    if tokens.get(at) != Some(&Token::Punct(',')) {
                        break;
                    }
                    at += 1;
                }
            }
            Token::Punct('{') => {
                depth += 1;
                if let Some(namespace) = pending_namespace.take() {
                    namespaces.push(namespace);
                }
            }
            Token::Punct('}') => {
                if depth == namespaces.len() {
                    namespaces.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_at_namespace_level_only() {
        let schema = r#"
            // entity Commented;
            entity Global;
            namespace Acme::Sales {
              type Ctx = { entity: String, note?: "entity Quoted" };
              @doc("entity InDoc")
              entity User in [Group] { email: String, manager?: User };
              entity Group, Team in [Group];
              entity Colour enum ["red", "green"];
              action "view" appliesTo { principal: [User], resource: [Team], context: Ctx };
            }
            entity After;
        "#;
        assert_eq!(
            entity_types(schema),
            ["Global", "Acme::Sales::User", "Acme::Sales::Group", "Acme::Sales::Team", "Acme::Sales::Colour", "After"]
        );
    }

    #[test]
    fn the_pack_schema() {
        let schema = include_str!("../../../../policies/analytics.cedarschema");
        let types = entity_types(schema);
        assert!(
            types.iter().any(|t| t == "Analytics::User") && types.iter().any(|t| t == "Analytics::Token"),
            "{types:?}"
        );
        assert!(types.iter().all(|t| t.starts_with("Analytics::")), "{types:?}");
    }
}
