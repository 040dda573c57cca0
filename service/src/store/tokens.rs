//! Token updates in batches, the same for every backend: read every token a
//! batch names in one query, apply the changes in order in memory, write the
//! tokens that changed in one statement, commit once. A batch costs one
//! fsync however many events it carries, which is what lets token events
//! keep up with the audit log's group commit.

use std::collections::{BTreeSet, HashMap};

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};
use warrant_engine::Timestamp;

use super::error::{StoreError, timestamp_of};
use super::open::Store;
use crate::tokens::{TokenState, TokenStatus};

/// Tokens read or written per statement (eight bound values a written
/// row: well inside SQLite's 32,766 and PostgreSQL's 65,535).
pub(crate) const CHUNK: usize = 512;

/// A token's next state from its state before (`None`: not stored yet), or
/// why the change is refused; `Ok(None)` leaves the token as it was.
pub type TokenChangeFn<'a, E> = Box<dyn FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E> + Send + 'a>;

/// One change of a batch.
pub struct TokenUpdate<'a, E> {
    pub token_id: String,
    pub change: TokenChangeFn<'a, E>,
}

impl<'a, E> TokenUpdate<'a, E> {
    pub fn new(
        token_id: impl Into<String>,
        change: impl FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E> + Send + 'a,
    ) -> Self {
        Self { token_id: token_id.into(), change: Box::new(change) }
    }
}

impl<E> std::fmt::Debug for TokenUpdate<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenUpdate").field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

/// What one change answered.
pub type TokenOutcome<E> = Result<Option<TokenState>, E>;

/// The distinct token ids of a batch, sorted (PostgreSQL locks them in this
/// order, so two batches never wait on each other in a cycle).
pub(crate) fn ids_of<E>(updates: &[TokenUpdate<'_, E>]) -> Vec<String> {
    let mut ids: Vec<String> = updates.iter().map(|u| u.token_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Applies `updates` in order over the states read in the transaction: a
/// change sees what the batch's earlier changes of the same token left.
/// Returns each change's outcome, in order, and the final state of every
/// token that changed (to be written), by id.
// INVARIANT: applying a batch gives the same outcomes and final states as
// applying its changes one transaction each, in the same order.
pub(crate) fn apply<E>(
    stored: Vec<TokenState>,
    updates: Vec<TokenUpdate<'_, E>>,
) -> (Vec<TokenOutcome<E>>, Vec<TokenState>) {
    let mut current: HashMap<String, TokenState> = stored.into_iter().map(|t| (t.token_id.clone(), t)).collect();
    let mut changed = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(updates.len());
    for TokenUpdate { token_id, change } in updates {
        let outcome = change(current.get(&token_id));
        if let Ok(Some(next)) = &outcome {
            current.insert(token_id.clone(), next.clone());
            changed.insert(token_id);
        }
        outcomes.push(outcome);
    }
    let writes = changed.into_iter().filter_map(|id| current.remove(&id)).collect();
    (outcomes, writes)
}

/// A stored token row.
pub(crate) fn token_of<R>(row: &R) -> Result<TokenState, StoreError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database>,
{
    Ok(TokenState {
        token_id: row.try_get("token_id")?,
        owner: row.try_get("owner")?,
        connection: row.try_get("connection")?,
        status: {
            let stored: String = row.try_get("status")?;
            TokenStatus::parse(&stored).ok_or_else(|| StoreError::Corrupt(format!("token status `{stored}`")))?
        },
        role: row.try_get("role")?,
        expires_at: timestamp_of(&row.try_get::<String, _>("expires_at")?, "expires_at")?,
        updated_at: timestamp_of(&row.try_get::<String, _>("updated_at")?, "updated_at")?,
        issued_at: row.try_get::<Option<String>, _>("issued_at")?.map(|t| timestamp_of(&t, "issued_at")).transpose()?,
    })
}

impl Store {
    /// One token by id.
    pub async fn token(&self, token_id: &str) -> Result<Option<TokenState>, StoreError> {
        on_backend!(self, b => {
            let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id = $1"))
                .bind(token_id)
                .fetch_optional(b.reader())
                .await?;
            row.map(|r| token_of(&r)).transpose()
        })
    }

    /// A user's tokens for a connection.
    pub async fn tokens_of(&self, owner: &str, connection: &str) -> Result<Vec<TokenState>, StoreError> {
        if let Store::Sqlite(s) = self
            && let Some(point) = s.point()
        {
            return point.tokens_of(owner, connection);
        }
        on_backend!(self, b => {
            let rows =
                sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = $1 AND connection = $2"))
                    .bind(owner)
                    .bind(connection)
                    .fetch_all(b.reader())
                    .await?;
            rows.iter().map(token_of).collect()
        })
    }

    /// Every token of `owner`, on any connection, by token id
    /// (`user.deprovisioned` revokes them all).
    pub async fn tokens_of_owner(&self, owner: &str) -> Result<Vec<TokenState>, StoreError> {
        on_backend!(self, b => {
            let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE owner = $1 ORDER BY token_id"))
                .bind(owner)
                .fetch_all(b.reader())
                .await?;
            rows.iter().map(token_of).collect()
        })
    }

    /// Reads a token, lets `change` compute its next state, and writes it, in
    /// one write transaction (no lost update between concurrent events).
    pub async fn update_token<'a, E: Send + 'a>(
        &self,
        token_id: &str,
        change: impl FnOnce(Option<&TokenState>) -> Result<Option<TokenState>, E> + Send + 'a,
    ) -> Result<TokenOutcome<E>, StoreError> {
        let mut outcomes = self.update_tokens(vec![TokenUpdate::new(token_id, change)]).await?;
        outcomes.pop().ok_or_else(|| StoreError::corrupt("a token update went unanswered"))
    }

    /// Applies `updates` in order in one write transaction (one commit): each
    /// change sees the state the earlier ones left. Outcomes in the same order.
    pub async fn update_tokens<'a, E: Send + 'a>(
        &self,
        updates: Vec<TokenUpdate<'a, E>>,
    ) -> Result<Vec<TokenOutcome<E>>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let (outcomes, _) =
            self.write(None, updates, |outcomes| Ok((Vec::new(), outcomes)), None, Timestamp::now(), true).await?;
        Ok(outcomes)
    }
}

/// `SELECT <token columns> FROM tokens WHERE token_id IN (…ids)`.
pub(crate) fn select<'a, DB>(ids: &'a [String], for_update: &str) -> QueryBuilder<DB>
where
    DB: Database,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(concat!("SELECT ", token_columns!(), " FROM tokens WHERE token_id IN ("));
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    query.push(")").push(for_update);
    query
}

/// One statement writing `tokens` (insert, or replace the mutable columns).
pub(crate) fn upsert<'a, DB>(tokens: &'a [TokenState]) -> QueryBuilder<DB>
where
    DB: Database,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
    String: for<'s> Encode<'s, DB> + Type<DB>,
    Option<String>: for<'s> Encode<'s, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(concat!("INSERT INTO tokens (", token_columns!(), ") "));
    query.push_values(tokens, |mut row, t| {
        row.push_bind(t.token_id.as_str())
            .push_bind(t.owner.as_str())
            .push_bind(t.connection.as_str())
            .push_bind(t.status.as_str())
            .push_bind(t.role.as_str())
            .push_bind(t.expires_at.to_string())
            .push_bind(t.updated_at.to_string())
            .push_bind(t.issued_at.map(|at| at.to_string()));
    });
    query.push(concat!(
        " ON CONFLICT (token_id) DO UPDATE SET status = excluded.status, role = excluded.role, ",
        "expires_at = excluded.expires_at, updated_at = excluded.updated_at, issued_at = excluded.issued_at"
    ));
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, status: TokenStatus) -> TokenState {
        TokenState {
            token_id: id.into(),
            owner: "ann".into(),
            connection: "snow".into(),
            status,
            role: String::new(),
            expires_at: "2030-01-01T00:00:00.000Z".parse().unwrap(),
            updated_at: "2026-06-01T00:00:00.000Z".parse().unwrap(),
            issued_at: None,
        }
    }

    /// Sets the status, refusing to touch a revoked token.
    fn set(id: &str, status: TokenStatus) -> TokenUpdate<'static, String> {
        let new = token(id, status);
        TokenUpdate::new(id, move |before: Option<&TokenState>| match before {
            Some(b) if b.status == TokenStatus::Revoked => Err(format!("{} is revoked", b.token_id)),
            Some(b) => Ok(Some(TokenState { status, ..b.clone() })),
            None => Ok(Some(new)),
        })
    }

    #[test]
    fn later_changes_see_earlier_ones_and_only_changed_tokens_are_written() {
        use TokenStatus::{Active, Expired, Revoked};
        let stored = vec![token("a", Active), token("b", Active)];
        let untouched = TokenUpdate::new("b", |_: Option<&TokenState>| Ok::<_, String>(None));
        let updates = vec![set("a", Revoked), set("a", Active), untouched, set("c", Expired)];
        let (outcomes, writes) = apply(stored, updates);
        assert_eq!(outcomes[0].as_ref().unwrap().as_ref().unwrap().status, "revoked");
        assert_eq!(outcomes[1], Err("a is revoked".into()), "the second change saw the first one's revoke");
        assert_eq!(outcomes[2], Ok(None));
        let written: Vec<(&str, &str)> = writes.iter().map(|t| (t.token_id.as_str(), t.status.as_str())).collect();
        assert_eq!(written, vec![("a", "revoked"), ("c", "expired")], "b is unchanged; a written once, as it ended");
    }

    #[test]
    fn ids_are_distinct_and_sorted() {
        let updates =
            vec![set("b", TokenStatus::Active), set("a", TokenStatus::Active), set("b", TokenStatus::Expired)];
        assert_eq!(ids_of(&updates), vec!["a".to_owned(), "b".to_owned()]);
    }
}
