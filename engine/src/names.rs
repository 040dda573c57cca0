//! Resolving the type and action names clients send, parsed once per bundle.
//!
//! A type name may be qualified (`Analytics::User`) or unqualified (`User`,
//! resolved in the bundle's namespace). An action may be named by its id
//! (`view_notebook`) or its full uid (`Analytics::Action::"view_notebook"`).

use std::collections::HashMap;

use cedar_policy::{EntityTypeName, EntityUid, Schema};

#[derive(Debug, Clone, Default)]
pub struct Names {
    namespace: Option<String>,
    types: HashMap<String, EntityTypeName>,
    actions: HashMap<String, EntityUid>,
    /// Each type's qualified spelling (`Analytics::User`), as rules see it.
    qualified: HashMap<EntityTypeName, String>,
}

impl Names {
    pub(crate) fn from_schema(schema: &Schema) -> Self {
        let mut namespaces: Vec<String> = schema.entity_types().map(EntityTypeName::namespace).collect();
        namespaces.sort();
        namespaces.dedup();
        // The bundle namespace: the one namespace its entity types live in.
        let namespace = match namespaces.as_slice() {
            [one] if !one.is_empty() => Some(one.clone()),
            _ => None,
        };
        let mut types = HashMap::new();
        for ty in schema.entity_types() {
            types.insert(ty.to_string(), ty.clone());
        }
        // Unqualified names resolve in the bundle namespace first.
        for ty in schema.entity_types() {
            let short = ty.basename().to_owned();
            let in_bundle_ns = namespace.as_deref() == Some(ty.namespace().as_str());
            if in_bundle_ns || !types.contains_key(&short) {
                types.insert(short, ty.clone());
            }
        }
        let mut actions = HashMap::new();
        for action in schema.actions() {
            actions.insert(action.to_string(), action.clone());
        }
        for action in schema.actions() {
            let id = action.id().unescaped().to_owned();
            let in_bundle_ns = namespace.as_deref() == Some(action.type_name().namespace().as_str());
            if in_bundle_ns || !actions.contains_key(&id) {
                actions.insert(id, action.clone());
            }
        }
        let qualified = schema
            .entity_types()
            .chain(schema.actions().map(EntityUid::type_name))
            .map(|t| (t.clone(), t.to_string()))
            .collect();
        Self { namespace, types, actions, qualified }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The entity type a client names, if the schema declares it.
    pub fn entity_type(&self, name: &str) -> Option<&EntityTypeName> {
        self.types.get(name)
    }

    /// The qualified spelling of a declared type (`Analytics::User`).
    pub fn qualified<'a>(&'a self, ty: &'a EntityTypeName) -> std::borrow::Cow<'a, str> {
        match self.qualified.get(ty) {
            Some(s) => std::borrow::Cow::Borrowed(s.as_str()),
            None => std::borrow::Cow::Owned(ty.to_string()),
        }
    }

    /// The action a client names, if the schema declares it.
    pub fn action(&self, name: &str) -> Option<&EntityUid> {
        self.actions.get(name)
    }

    /// Every action id, for discovery (`search/action`).
    pub fn actions(&self) -> impl Iterator<Item = &EntityUid> {
        let mut seen: Vec<&EntityUid> = self.actions.values().collect();
        seen.sort_by_key(|uid| uid.to_string());
        seen.dedup();
        seen.into_iter()
    }
}
