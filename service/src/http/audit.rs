//! The auditor's API: query, export, verify, checkpoints, proofs, digests.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use warrant_engine::Timestamp;
use warrant_engine::audit::{MAX_SEQ, Outcome, merkle};

use super::decision::Verdict;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::query::{ApiQuery, unsigned, utc};
use crate::audit::verify::{self, VerifyError};
use crate::state::AppState;
use crate::store::AuditFilter;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Records per read while exporting.
const EXPORT_CHUNK: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/export", get(export))
        .route("/v1/audit/verify", get(verify_log))
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/proofs/inclusion", get(inclusion))
        .route("/v1/audit/proofs/consistency", get(consistency))
        .route("/v1/audit/digest", post(digest))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    events: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<u64>,
}

/// One sealed audit record (also one line of the export), exactly as stored:
/// optional fields are absent, never null, when unset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    seq: u64,
    /// RFC 3339 UTC.
    ts: String,
    kind: String,
    actor: String,
    /// The token id's keyed digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_digest: Option<String>,
    #[schema(value_type = Object)]
    details: Map<String, Value>,
    key_id: String,
    /// The previous record's `mac` (zeros for seq 1).
    prev_mac: String,
    mac: String,
}

impl From<warrant_engine::Record> for AuditRecord {
    fn from(r: warrant_engine::Record) -> Self {
        let warrant_engine::Record {
            seq,
            ts,
            kind,
            actor,
            token_id,
            token_owner,
            connection,
            project,
            decision,
            reasons,
            policy_digest,
            details,
            key_id,
            prev_mac,
            mac,
        } = r;
        let decision = decision.map(|d| match d {
            Outcome::Allow => Verdict::Allow,
            Outcome::Deny => Verdict::Deny,
        });
        Self {
            seq,
            ts,
            kind,
            actor,
            token_id,
            token_owner,
            connection,
            project,
            decision,
            reasons,
            policy_digest,
            details,
            key_id,
            prev_mac,
            mac,
        }
    }
}

/// A signed tree head.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checkpoint {
    /// Records covered: seq 1..=tree_size.
    tree_size: u64,
    /// RFC 9162 root, 64 hex digits.
    root: String,
    /// When it was signed, RFC 3339 UTC.
    ts: String,
    key_id: String,
    mac: String,
}

impl From<warrant_engine::Checkpoint> for Checkpoint {
    fn from(c: warrant_engine::Checkpoint) -> Self {
        let warrant_engine::Checkpoint { tree_size, root, ts, key_id, mac } = c;
        Self { tree_size, root, ts, key_id, mac }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    seq: u64,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    root: String,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    from: u64,
    to: u64,
    root_from: String,
    root_to: String,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Digest {
    /// `hmac-sha256:<hex>`.
    digest: String,
}

/// A proof the handler's range checks said exists could not be built.
impl From<merkle::ProofError> for ApiError {
    fn from(e: merkle::ProofError) -> Self {
        Self::internal(e)
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Range(message) => Self::bad_request("invalid_query", message),
            VerifyError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsParams {
    /// RFC 3339; records at or after.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339; records before.
    #[param(format = DateTime)]
    until: Option<String>,
    /// The record kind (`decision`, `token.used`, …).
    kind: Option<String>,
    actor: Option<String>,
    /// A token id in clear: matched by its keyed digest.
    token: Option<String>,
    /// A token's keyed digest, as records hold it in `token_id`
    /// (`hmac-sha256:` and 64 hex digits): to follow one token's records.
    #[param(pattern = "^hmac-sha256:[0-9a-f]{64}$")]
    token_digest: Option<String>,
    connection: Option<String>,
    project: Option<String>,
    /// `allow` or `deny`.
    #[param(pattern = "^(allow|deny)$")]
    decision: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(schema_with = unsigned)]
    cursor: Option<u64>,
    /// Records per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/events",
    operation_id = "audit_events",
    tag = "audit",
    summary = "Query the audit log, oldest first, a page at a time",
    params(EventsParams),
    responses(
        (status = 200, description = "one page of records; `next_cursor` is null on the last", body = AuditEvents),
        (status = 400, description = "an invalid query parameter (`invalid_query`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn events(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<EventsParams>,
) -> Result<Json<AuditEvents>, ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", format!("`limit` must be 1..={MAX_PAGE}")).with_field("limit")
        );
    }
    if let Some(d) = &p.decision
        && d != "allow"
        && d != "deny"
    {
        return Err(ApiError::bad_request("invalid_query", "`decision` is `allow` or `deny`").with_field("decision"));
    }
    if let Some(d) = &p.token_digest
        && !(d.len() == 76
            && d.starts_with("hmac-sha256:")
            && d[12..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`token_digest` is `hmac-sha256:` and 64 lowercase hex digits",
        )
        .with_field("token_digest"));
    }
    if p.token.is_some() && p.token_digest.is_some() {
        return Err(ApiError::bad_request("invalid_query", "give `token` or `token_digest`, not both")
            .with_field("token_digest"));
    }
    let filter = AuditFilter {
        since: utc("since", p.since)?,
        until: utc("until", p.until)?,
        kind: p.kind,
        actor: p.actor,
        token_id: p.token.map(|t| state.keys().digest(&t)).or(p.token_digest),
        connection: p.connection,
        project: p.project,
        decision: p.decision,
        after_seq: p.cursor.unwrap_or(0),
        limit,
    };
    let records = state.store().audit_query(&filter).await?;
    let next_cursor = (records.len() as u32 == limit).then(|| records.last().map(|r| r.seq)).flatten();
    Ok(Json(AuditEvents { events: records.into_iter().map(AuditRecord::from).collect(), next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// First `seq` (default 1).
    #[param(schema_with = unsigned)]
    from: Option<u64>,
    /// Last `seq` (default: the last record).
    #[param(schema_with = unsigned)]
    to: Option<u64>,
}

/// JSON Lines, one record per line, streamed in `seq` order.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    operation_id = "audit_export",
    tag = "audit",
    summary = "Export the audit log as JSON Lines",
    description = "One record (the `AuditRecord` schema) per line, in `seq` order, streamed.",
    params(RangeParams),
    responses(
        (status = 200, description = "the records, one JSON object per line", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "an invalid query parameter (`invalid_query`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn export(State(state): State<AppState>, ApiQuery(p): ApiQuery<RangeParams>) -> Response {
    let store = state.store().clone();
    let to = p.to.unwrap_or(MAX_SEQ);
    let stream = futures_stream(store, p.from.unwrap_or(1), to);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

fn futures_stream(
    store: crate::store::Store,
    from: u64,
    to: u64,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    async_stream(move |tx| async move {
        let mut next = from;
        while next <= to {
            let chunk = match store.audit_range(next, to, EXPORT_CHUNK).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let Some(last) = chunk.last().map(|r| r.seq) else { return };
            let mut lines = Vec::new();
            for record in chunk.into_iter().map(AuditRecord::from) {
                if serde_json::to_writer(&mut lines, &record).is_ok() {
                    lines.push(b'\n');
                }
            }
            if tx.send(Ok(lines)).await.is_err() {
                return;
            }
            next = last + 1;
        }
    })
}

/// A stream fed by a task through a bounded channel (backpressure: the
/// reader of the export paces the reads from the store).
fn async_stream<F, Fut>(f: F) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VerifyParams {
    /// First `seq` to check (default 1).
    #[param(schema_with = unsigned)]
    from: Option<u64>,
    /// Last `seq` to check (default: the last record).
    #[param(schema_with = unsigned)]
    to: Option<u64>,
    /// A checkpoint the auditor kept: its size and root (hex); both or neither.
    #[param(maximum = 9007199254740991_u64)]
    tree_size: Option<u64>,
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    root: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    operation_id = "audit_verify",
    tag = "audit",
    summary = "Verify the stored log: the keyed chain, then the checkpoints",
    description = "A broken log is a 200 with `ok: false`, the first bad `seq` and why.",
    params(VerifyParams),
    responses(
        (status = 200, description = "the verification report", body = verify::Report),
        (status = 400, description = "an invalid query parameter (`invalid_query`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn verify_log(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<VerifyParams>,
) -> Result<Json<verify::Report>, ApiError> {
    let kept = match (p.tree_size, p.root) {
        (Some(tree_size), Some(root)) => {
            // An auditor's own copy: its root is trusted as given, so sign it
            // here only to pass the signature check.
            let hash = hex::decode(&root).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "`root` must be 64 hex digits").with_field("root")
            })?;
            let ts = Timestamp::now().to_string();
            let signed =
                warrant_engine::Checkpoint::sign(tree_size, &hash, &ts, state.keys().signing()).map_err(|e| {
                    ApiError::bad_request("invalid_query", format!("`tree_size`: {e}")).with_field("tree_size")
                })?;
            vec![signed]
        }
        (None, None) => Vec::new(),
        _ => return Err(ApiError::bad_request("invalid_query", "give both `tree_size` and `root`, or neither")),
    };
    let report = verify::verify(state.store(), state.keys(), p.from.unwrap_or(1), p.to, &kept, &[], |_| {}).await?;
    Ok(Json(report))
}

/// Signs (and keeps) a checkpoint of the log as it is now.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    operation_id = "audit_checkpoint",
    tag = "audit",
    summary = "Sign (and keep) a checkpoint of the log as it is now",
    responses((status = 200, description = "the signed tree head", body = Checkpoint)),
    security(("bearer" = ["audit:read"]))
)]
async fn checkpoint(State(state): State<AppState>) -> Result<Json<Checkpoint>, ApiError> {
    let (size, root) = state.audit().head();
    let ts = Timestamp::now().to_string();
    let c = warrant_engine::Checkpoint::sign(size, &root, &ts, state.keys().signing()).map_err(ApiError::internal)?;
    state.store().save_checkpoint(&c).await?;
    Ok(Json(c.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InclusionParams {
    /// The record's `seq`.
    seq: u64,
    /// The tree to prove inclusion in (default: the whole log).
    tree_size: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/proofs/inclusion",
    operation_id = "audit_inclusion_proof",
    tag = "audit",
    summary = "RFC 9162 inclusion proof of a record",
    params(InclusionParams),
    responses(
        (status = 200, description = "the proof and the root it leads to", body = InclusionProof),
        (status = 400, description = "an invalid query parameter (`invalid_query`)", body = ErrorBody),
        (status = 404, description = "no such record in a tree of that size", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<InclusionParams>,
) -> Result<Json<InclusionProof>, ApiError> {
    let audit = state.audit();
    let known = audit.size();
    let size = p.tree_size.unwrap_or(known);
    if p.seq == 0 || p.seq > size || size > known {
        return Err(ApiError::not_found(format!("no record {} in a log of {size} (the log has {known})", p.seq)));
    }
    let index = p.seq - 1;
    let answer = audit
        .read_tree(|tree| {
            Ok::<_, merkle::ProofError>((tree.inclusion_proof(index, size)?, tree.root_at(size)?, tree.leaf(index)?))
        })
        .await?;
    let (proof, root, leaf) = answer?;
    let leaf_hash = hex::encode(leaf);
    Ok(Json(InclusionProof {
        seq: p.seq,
        leaf_index: index,
        tree_size: size,
        leaf_hash,
        root: hex::encode(root),
        proof: proof.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConsistencyParams {
    /// The older tree size (a kept checkpoint's `tree_size`).
    from: u64,
    /// The newer tree size (default: the whole log).
    to: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/audit/proofs/consistency",
    operation_id = "audit_consistency_proof",
    tag = "audit",
    summary = "RFC 9162 consistency proof between two tree sizes",
    params(ConsistencyParams),
    responses(
        (status = 200, description = "the proof and both roots", body = ConsistencyProof),
        (status = 400, description = "an invalid query parameter or range (`invalid_query`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn consistency(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let audit = state.audit();
    let known = audit.size();
    let to = p.to.unwrap_or(known);
    if p.from == 0 || p.from > to || to > known {
        return Err(ApiError::bad_request("invalid_query", format!("need 1 <= from <= to <= {known}")));
    }
    let answer = audit
        .read_tree(|tree| {
            Ok::<_, merkle::ProofError>((tree.consistency_proof(p.from, to)?, tree.root_at(p.from)?, tree.root_at(to)?))
        })
        .await?;
    let (proof, root_from, root_to) = answer?;
    Ok(Json(ConsistencyProof {
        from: p.from,
        to,
        root_from: hex::encode(root_from),
        root_to: hex::encode(root_to),
        proof: proof.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct DigestRequest {
    #[garde(length(min = 1, max = 65536))]
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
}

/// The keyed digest of a value an auditor holds, to search the log for it.
#[utoipa::path(
    post,
    path = "/v1/audit/digest",
    operation_id = "audit_digest",
    tag = "audit",
    summary = "The keyed digest of a value, to search the log for it",
    request_body = DigestRequest,
    responses((status = 200, description = "`hmac-sha256:<hex>`", body = Digest)),
    security(("bearer" = ["audit:read"]))
)]
async fn digest(State(state): State<AppState>, ApiJson(body): ApiJson<DigestRequest>) -> Json<Digest> {
    Json(Digest { digest: state.keys().digest(&body.value) })
}
