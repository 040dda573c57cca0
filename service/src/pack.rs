//! The contract between the service's Rust and the Cedar pack
//! (`policies/`, docs/domain.md#cedar-contract): every entity type, action,
//! context key, context value and deny reason the service names, in one
//! place, and the check that a bundle declares what credential resolution
//! asks of it.
//!
//! Everything else about a decision is the bundle's: the service sends
//! these names and reads these reasons, and Cedar decides. A bundle that
//! renames one still loads (it may serve plain decisions that never touch
//! credentials), so the check runs when a bundle loads ([`Gaps::of`]): the
//! service warns then, and resolution answers with what is missing
//! ([`Incomplete`]) instead of blaming the caller for an unknown action.

use std::fmt;

use serde::{Deserialize, Serialize};
use warrant_engine::Bundle;

/// An entity type the service names, unqualified: it resolves in the
/// bundle's namespace (`Analytics` in the pack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// The principal of every resolution but a service's, and a token's owner.
    User,
    /// The principal that may use the service account.
    Service,
    /// Whose `owner` attribute ([`PROJECT_OWNER`]) names the owner whose
    /// credentials may be shared.
    Project,
    Connection,
    /// Built by the service for each decision, never stored
    /// (`TokenState::entity`).
    Token,
}

impl EntityType {
    pub const ALL: [Self; 5] = [Self::User, Self::Service, Self::Project, Self::Connection, Self::Token];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Service => "Service",
            Self::Project => "Project",
            Self::Connection => "Connection",
            Self::Token => "Token",
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attribute of a `Project` naming its owner (an entity reference).
pub const PROJECT_OWNER: &str = "owner";

/// An action credential resolution decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// R16: a `Service` on a connection, for the service account.
    UseServiceAccount,
    /// R5, R9: a user on a project, for its owner's token.
    UseOwnerCredentials,
    /// R6: a user on a token (the owner's before it is shared, or their own).
    UseToken,
    /// R8: whoever's token will run the query, on the connection.
    RunQuery,
}

impl Action {
    pub const ALL: [Self; 4] = [Self::UseServiceAccount, Self::UseOwnerCredentials, Self::UseToken, Self::RunQuery];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UseServiceAccount => "use_service_account",
            Self::UseOwnerCredentials => "use_owner_credentials",
            Self::UseToken => "use_token",
            Self::RunQuery => "run_query",
        }
    }

    /// The principal type the service asks this action for.
    pub const fn principal(self) -> EntityType {
        match self {
            Self::UseServiceAccount => EntityType::Service,
            Self::UseOwnerCredentials | Self::UseToken | Self::RunQuery => EntityType::User,
        }
    }

    /// The resource type the service asks this action about.
    pub const fn resource(self) -> EntityType {
        match self {
            Self::UseServiceAccount | Self::RunQuery => EntityType::Connection,
            Self::UseOwnerCredentials => EntityType::Project,
            Self::UseToken => EntityType::Token,
        }
    }

    /// The context keys the schema must declare for this action: those the
    /// service always sends (an undeclared key makes the request invalid),
    /// and `now` for `use_token`, which the service leaves to the engine to
    /// fill in and the policies to compare with a token's `expires_at`.
    /// [`ContextKey::TokenIssuedAt`] is not among them: it is sent only when
    /// the schema declares it.
    pub const fn context(self) -> &'static [ContextKey] {
        match self {
            Self::UseServiceAccount => &[ContextKey::Purpose],
            Self::UseOwnerCredentials => &[ContextKey::Surface, ContextKey::OwnerTokenStatus],
            Self::UseToken => &[ContextKey::Now],
            Self::RunQuery => &[],
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A context key the service sends or relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextKey {
    /// The decision's time; the engine fills it in from the clock.
    Now,
    /// Where the query runs ([`Surface`]), for `use_owner_credentials`.
    Surface,
    /// The owner's token's status at `now`, or [`OWNER_TOKEN_NONE`].
    OwnerTokenStatus,
    /// Why a `Service` asks (empty when not given).
    Purpose,
    /// When the token's user last authenticated, for rules such as
    /// `token-max-age`; sent only when the schema declares it a `datetime`.
    TokenIssuedAt,
}

impl ContextKey {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Now => "now",
            Self::Surface => "surface",
            Self::OwnerTokenStatus => "owner_token_status",
            Self::Purpose => "purpose",
            Self::TokenIssuedAt => "token_issued_at",
        }
    }
}

impl fmt::Display for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `owner_token_status` when the project has no known owner, or the owner
/// no token for the connection (otherwise a `TokenStatus`).
pub const OWNER_TOKEN_NONE: &str = "none";

/// Where a query runs: the `surface` of a resolution request and of the
/// `use_owner_credentials` context, which the pack's R5 permits compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    Notebook,
    App,
    Schedule,
}

impl Surface {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Notebook => "notebook",
            Self::App => "app",
            Self::Schedule => "schedule",
        }
    }
}

/// A deny reason the service reads in Cedar's answers or gives itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// R5's forbid: sharing applies but the owner's token is not active.
    /// Resolution stops there rather than fall back to the caller's token.
    OwnerTokenExpired,
    /// R6's forbid, and the service's answer when the caller has no token.
    ReauthRequired,
    /// No permit applied (the engine's [`warrant_engine::decide::NO_PERMIT`]): for
    /// `use_owner_credentials`, sharing does not apply and resolution goes
    /// on to the caller's own token.
    NoPermit,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OwnerTokenExpired => "owner_token_expired",
            Self::ReauthRequired => "reauth_required",
            Self::NoPermit => warrant_engine::decide::NO_PERMIT,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks for a credential: the principal types resolution accepts, each
/// with its own path through the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    User,
    Service,
}

impl Requester {
    /// From a principal type as the client names it (`User`,
    /// `Analytics::User`): its last segment.
    pub fn of(type_name: &str) -> Option<Self> {
        match type_name.rsplit("::").next().unwrap_or_default() {
            t if t == EntityType::User.as_str() => Some(Self::User),
            t if t == EntityType::Service.as_str() => Some(Self::Service),
            _ => None,
        }
    }

    pub const fn entity_type(self) -> EntityType {
        match self {
            Self::User => EntityType::User,
            Self::Service => EntityType::Service,
        }
    }

    /// The actions this requester's resolution may decide.
    pub const fn actions(self) -> &'static [Action] {
        match self {
            Self::User => &[Action::UseOwnerCredentials, Action::UseToken, Action::RunQuery],
            Self::Service => &[Action::UseServiceAccount],
        }
    }

    fn involves(self, ty: EntityType) -> bool {
        self.actions().iter().any(|a| a.principal() == ty || a.resource() == ty)
    }
}

/// One thing a bundle's schema lacks of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    EntityType(EntityType),
    Action(Action),
    /// The action is declared, but not for the principal and resource
    /// types the service asks it with.
    AppliesTo(Action),
    ContextKey(Action, ContextKey),
}

impl Gap {
    /// Whether `requester`'s resolution needs what is missing.
    fn blocks(self, requester: Requester) -> bool {
        match self {
            Self::EntityType(ty) => requester.involves(ty),
            Self::Action(a) | Self::AppliesTo(a) | Self::ContextKey(a, _) => requester.actions().contains(&a),
        }
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EntityType(ty) => write!(f, "entity type `{ty}`"),
            Self::Action(a) => write!(f, "action `{a}`"),
            Self::AppliesTo(a) => {
                write!(f, "action `{a}` for principal `{}` and resource `{}`", a.principal(), a.resource())
            }
            Self::ContextKey(a, key) => write!(f, "context key `{key}` of action `{a}`"),
        }
    }
}

/// What a bundle's schema lacks of the contract: empty for the pack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps(Vec<Gap>);

impl Gaps {
    /// Checks `bundle`'s schema for every entity type, action (with the
    /// types it applies to) and context key resolution relies on. An
    /// undeclared action is reported alone, not with its context keys.
    pub fn of(bundle: &Bundle) -> Self {
        let mut gaps: Vec<Gap> = EntityType::ALL
            .into_iter()
            .filter(|ty| !bundle.has_entity_type(ty.as_str()))
            .map(Gap::EntityType)
            .collect();
        for action in Action::ALL {
            let name = action.as_str();
            if !bundle.has_action(name) {
                gaps.push(Gap::Action(action));
                continue;
            }
            let (principal, resource) = (action.principal().as_str(), action.resource().as_str());
            let types_known = bundle.has_entity_type(principal) && bundle.has_entity_type(resource);
            if types_known && !bundle.action_applies_to(name, principal, resource) {
                gaps.push(Gap::AppliesTo(action));
            }
            for key in action.context() {
                if !bundle.context_has_key(name, key.as_str()) {
                    gaps.push(Gap::ContextKey(action, *key));
                }
            }
        }
        Self(gaps)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Gap> {
        self.0.iter()
    }

    /// `Ok` when nothing `requester`'s resolution needs is missing: a
    /// bundle without service accounts still resolves users' credentials.
    pub fn check(&self, requester: Requester) -> Result<(), Incomplete> {
        let blocking: Vec<Gap> = self.0.iter().copied().filter(|g| g.blocks(requester)).collect();
        if blocking.is_empty() {
            Ok(())
        } else {
            Err(Incomplete { requester: requester.entity_type(), gaps: Self(blocking) })
        }
    }
}

impl FromIterator<Gap> for Gaps {
    fn from_iter<I: IntoIterator<Item = Gap>>(gaps: I) -> Self {
        Self(gaps.into_iter().collect())
    }
}

impl fmt::Display for Gaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gap) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{gap}")?;
        }
        Ok(())
    }
}

/// Why the active bundle cannot resolve a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the active policy bundle cannot resolve credentials for a `{requester}`: its schema lacks {gaps}")]
pub struct Incomplete {
    pub requester: EntityType,
    pub gaps: Gaps,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use warrant_engine::BundleSource;

    use super::*;

    fn pack_files() -> BTreeMap<String, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
        BundleSource::read_dir(&dir).unwrap().to_files()
    }

    fn load(files: BTreeMap<String, String>) -> Bundle {
        Bundle::load(BundleSource::from_files(files).unwrap()).unwrap()
    }

    #[test]
    fn the_shipped_pack_keeps_the_contract() {
        let gaps = Gaps::of(&load(pack_files()));
        assert_eq!(gaps, Gaps::default(), "the pack lacks {gaps}");
        assert_eq!(gaps.check(Requester::User), Ok(()));
        assert_eq!(gaps.check(Requester::Service), Ok(()));
    }

    #[test]
    fn a_pack_without_use_token_is_reported_by_name() {
        let mut files = pack_files();
        files.remove("tokens.cedar");
        let schema = files.get_mut("analytics.cedarschema").unwrap();
        let declared = "action use_token, refresh_token, revoke_token appliesTo";
        assert!(schema.contains(declared));
        *schema = schema.replace(declared, "action refresh_token, revoke_token appliesTo");
        let gaps = Gaps::of(&load(files));
        assert_eq!(gaps, Gaps(vec![Gap::Action(Action::UseToken)]));
        let err = gaps.check(Requester::User).unwrap_err();
        assert!(err.to_string().ends_with("its schema lacks action `use_token`"), "{err}");
        assert_eq!(gaps.check(Requester::Service), Ok(()), "service accounts do not need it");
    }

    #[test]
    fn undeclared_context_keys_and_types_an_action_does_not_apply_to_are_reported() {
        let schema = r#"namespace Ns {
            type Ctx = { now: datetime, owner_token_status?: String, purpose?: String };
            entity User, Project, Connection, Token;
            action use_owner_credentials appliesTo { principal: User, resource: Project, context: Ctx };
            action use_token appliesTo { principal: User, resource: Token, context: { surface: String } };
            action run_query appliesTo { principal: User, resource: Project, context: Ctx };
            action use_service_account appliesTo { principal: User, resource: Connection, context: Ctx };
        }"#;
        let files = BTreeMap::from([("s.cedarschema".to_owned(), schema.to_owned())]);
        let gaps = Gaps::of(&load(files));
        assert_eq!(
            gaps,
            Gaps(vec![
                Gap::EntityType(EntityType::Service),
                Gap::ContextKey(Action::UseOwnerCredentials, ContextKey::Surface),
                Gap::ContextKey(Action::UseToken, ContextKey::Now),
                Gap::AppliesTo(Action::RunQuery),
            ])
        );
        assert_eq!(
            gaps.to_string(),
            "entity type `Service`, context key `surface` of action `use_owner_credentials`, \
             context key `now` of action `use_token`, \
             action `run_query` for principal `User` and resource `Connection`"
        );
    }

    #[test]
    fn gaps_name_what_is_missing_and_whom_it_stops() {
        let gaps = Gaps(vec![
            Gap::Action(Action::UseToken),
            Gap::ContextKey(Action::UseOwnerCredentials, ContextKey::Surface),
        ]);
        assert_eq!(gaps.check(Requester::Service), Ok(()), "a service never asks `use_token`");
        let err = gaps.check(Requester::User).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the active policy bundle cannot resolve credentials for a `User`: its schema lacks action `use_token`, \
             context key `surface` of action `use_owner_credentials`"
        );
        let no_service = Gaps(vec![Gap::EntityType(EntityType::Service)]);
        assert_eq!(no_service.check(Requester::User), Ok(()));
        assert!(no_service.check(Requester::Service).is_err());
        let no_connection = Gaps(vec![Gap::EntityType(EntityType::Connection)]);
        assert!(no_connection.check(Requester::User).is_err() && no_connection.check(Requester::Service).is_err());
    }

    #[test]
    fn requesters_are_named_by_the_last_segment() {
        assert_eq!(Requester::of("User"), Some(Requester::User));
        assert_eq!(Requester::of("Analytics::Service"), Some(Requester::Service));
        assert_eq!(Requester::of("Group"), None);
        assert_eq!(Requester::of("Analytics::user"), None, "type names are case-sensitive");
    }
}
