//! `GET /v1/policies` (the active bundle) and `PUT /v1/policies` (a new one:
//! validated, then swapped atomically; a bad bundle is refused with located
//! diagnostics and the old one stays active; a good one's warnings come
//! back with the answer).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use garde::Validate;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};
use warrant_engine::bundle::FileKind;
use warrant_engine::{BundleSource, Timestamp};

use super::error::{ApiError, Diagnostic, ErrorBody};
use super::guard::Caller;
use super::json::ApiJson;
use super::query::{ApiQuery, utc};
use crate::state::{Activation, AppState, ChangeError};
use crate::store::{BundleOrigin, MAX_REPLAY, TimeWindow};

/// Most files in one uploaded bundle.
const MAX_FILES: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/policies", get(show).put(replace))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ShowParams {
    /// Include each file's text.
    #[serde(default)]
    content: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyBundle {
    digest: String,
    /// The schema's namespace, if it has one.
    #[schema(required = true)]
    namespace: Option<String>,
    /// How many policies.
    policies: usize,
    origin: Origin,
    #[schema(value_type = String, format = DateTime)]
    activated_at: Timestamp,
    /// Sorted by path.
    files: Vec<PolicyFile>,
}

/// Where the active bundle came from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = BundleOrigin)]
pub enum Origin {
    /// Read from the policies directory (at start or on SIGHUP).
    Disk,
    /// Uploaded with `PUT /v1/policies`.
    Api,
}

impl From<BundleOrigin> for Origin {
    fn from(origin: BundleOrigin) -> Self {
        match origin {
            BundleOrigin::Disk => Self::Disk,
            BundleOrigin::Api => Self::Api,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyFile {
    path: String,
    bytes: usize,
    sha256: String,
    /// The text, with `?content=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    /// How `content` is encoded when it is not the text itself: rule
    /// components are binary and shown as base64, the form `PUT` takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<Encoding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Base64,
}

#[utoipa::path(
    get,
    path = "/v1/policies",
    operation_id = "get_policies",
    tag = "policies",
    summary = "The active policy bundle",
    params(ShowParams),
    responses(
        (status = 200, description = "its digest, namespace, origin and files", body = PolicyBundle),
        (status = 400, description = "an invalid query parameter", body = ErrorBody),
    ),
    security(("bearer" = ["policy:admin"]))
)]
async fn show(State(state): State<AppState>, ApiQuery(params): ApiQuery<ShowParams>) -> Json<PolicyBundle> {
    let snapshot = state.snapshot();
    let source = snapshot.bundle.source();
    let text = source.files().map(|(path, text)| (path, text.as_bytes(), None));
    // Rule components are binary: their content is shown base64-encoded, the
    // form `PUT /v1/policies` takes.
    let binary = source.binaries().map(|(path, bytes)| (path, bytes, Some(Encoding::Base64)));
    let mut files: Vec<PolicyFile> = text
        .chain(binary)
        .map(|(path, bytes, encoding)| {
            let content = params.content.then(|| match encoding {
                Some(Encoding::Base64) => BASE64.encode(bytes),
                None => String::from_utf8_lossy(bytes).into_owned(),
            });
            PolicyFile {
                path: path.to_owned(),
                bytes: bytes.len(),
                sha256: hex::encode(Sha256::digest(bytes)),
                encoding: encoding.filter(|_| content.is_some()),
                content,
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Json(PolicyBundle {
        digest: snapshot.bundle.digest().to_owned(),
        namespace: snapshot.bundle.namespace().map(str::to_owned),
        policies: snapshot.bundle.policy_count(),
        origin: snapshot.origin.into(),
        activated_at: snapshot.activated_at,
        files,
    })
}

/// `{"files": {"relative/path.cedar": "text", …}}` or `{"files": [{"path",
/// "content", "encoding"?}, …]}`: the whole new bundle. Fields beside
/// `files` are ignored, so the answer of `GET /v1/policies?content=true`
/// can be put back as it is.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[schema(as = PolicyUpload)]
struct Upload {
    /// Either an object, bundle-relative path → file text, or the `files`
    /// list `GET /v1/policies?content=true` returns (its `bytes` and
    /// `sha256` are ignored); described in [`upload_files_schema`].
    #[garde(custom(file_count))]
    #[schema(schema_with = upload_files_schema)]
    files: UploadFiles,
}

/// The files of an upload by bundle-relative path, components base64: the
/// form [`BundleSource::from_files`] reads, whichever form was sent.
#[derive(Debug)]
struct UploadFiles(BTreeMap<String, String>);

/// One file of the list form of an upload, as
/// `GET /v1/policies?content=true` lists it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PolicyUploadFile)]
struct ListedFile {
    /// Bundle-relative, `/`-separated.
    path: String,
    /// The text; with `"encoding": "base64"`, its base64 (rule components
    /// are always base64, as `GET` shows them).
    content: String,
    #[serde(default)]
    encoding: Option<Encoding>,
}

impl<'de> Deserialize<'de> for UploadFiles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UploadFilesVisitor)
    }
}

struct UploadFilesVisitor;

impl<'de> serde::de::Visitor<'de> for UploadFilesVisitor {
    type Value = UploadFiles;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of path → text, or the `files` list `GET /v1/policies?content=true` returns")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut files = BTreeMap::new();
        while let Some((path, text)) = map.next_entry::<String, String>()? {
            files.insert(path, text);
        }
        Ok(UploadFiles(files))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut files = BTreeMap::new();
        while let Some(file) = seq.next_element::<ListedFile>()? {
            let ListedFile { path, content, encoding } = file;
            // Components are kept base64, as the object form carries them;
            // a text file sent base64 is decoded here.
            let text = match encoding {
                Some(Encoding::Base64) if FileKind::of(&path) != Some(FileKind::Component) => {
                    let bytes = BASE64.decode(content.trim()).map_err(|e| {
                        A::Error::custom(format!("`{path}`: `content` is not base64 (`encoding` says it is): {e}"))
                    })?;
                    String::from_utf8(bytes).map_err(|_| {
                        A::Error::custom(format!("`{path}`: a bundle's text files are UTF-8, this one is not"))
                    })?
                }
                _ => content,
            };
            if files.contains_key(&path) {
                return Err(A::Error::custom(format!("`{path}` is listed twice")));
            }
            files.insert(path, text);
        }
        Ok(UploadFiles(files))
    }
}

/// garde check: between 1 and [`MAX_FILES`] files.
fn file_count(files: &UploadFiles, _: &()) -> garde::Result {
    if files.0.is_empty() || files.0.len() > MAX_FILES {
        return Err(garde::Error::new(format!("between 1 and {MAX_FILES} files, not {}", files.0.len())));
    }
    Ok(())
}

/// The schema of [`UploadFiles`]: either form, with the limits both share.
fn upload_files_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::PartialSchema as _;
    use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema};
    let by_path = ObjectBuilder::new()
        .description(Some("bundle-relative path → file text (components base64)"))
        .additional_properties(Some(AdditionalProperties::RefOr(String::schema())))
        .min_properties(Some(1))
        .max_properties(Some(MAX_FILES));
    let listed = ArrayBuilder::new()
        .description(Some("the `files` list `GET /v1/policies?content=true` returns"))
        .items(ListedFile::schema())
        .min_items(Some(1))
        .max_items(Some(MAX_FILES));
    Schema::OneOf(
        OneOfBuilder::new()
            .description(Some(
                "The files: one `*.cedarschema`, the `*.cedar` policies, optionally `links.json` and \
                 `entities.json`, and optionally custom rules: `rules/manifest.json` with the `rules/*.wasm` \
                 components it names, base64-encoded.",
            ))
            .item(by_path)
            .item(listed)
            .build(),
    )
}

/// How `PUT /v1/policies` treats the upload.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReplaceParams {
    /// Change nothing: validate the bundle and report what it would change
    /// (`impact`: the requests whose answers flip over the stored
    /// entities), with no `policy.updated` record.
    #[serde(default)]
    dry_run: bool,
    /// Refuse the change (409 `too_many_new_permits`, nothing changed) when
    /// it newly permits more requests than this over the stored entities.
    /// An accepted change's `policy.updated` record carries the impact's
    /// summary.
    #[serde(default)]
    max_new_permits: Option<usize>,
    /// With `dry_run`: also ask the newest this many `decision` records
    /// of the audit log again under the new bundle (`replay` in the answer;
    /// at most 100,000).
    #[serde(default)]
    #[param(maximum = 100_000)]
    replay: Option<usize>,
    /// With `dry_run`: replay only decisions logged at or after this time
    /// (RFC 3339); the newest `replay` of them, 100,000 when `replay` is
    /// not given.
    #[param(format = DateTime)]
    replay_since: Option<String>,
    /// With `dry_run`: replay only decisions logged before this time.
    #[param(format = DateTime)]
    replay_until: Option<String>,
}

/// What a dry run replays: how many of the newest decisions, within which
/// time window. Each replay parameter goes with `dry_run=true`.
fn replayed(params: &ReplaceParams) -> Result<Option<(usize, TimeWindow)>, ApiError> {
    let named = [
        ("replay", params.replay.is_some()),
        ("replay_since", params.replay_since.is_some()),
        ("replay_until", params.replay_until.is_some()),
    ];
    let Some(first) = named.iter().find(|(_, given)| *given).map(|(name, _)| *name) else { return Ok(None) };
    if !params.dry_run {
        let message = format!("`{first}` goes with `dry_run=true`");
        return Err(ApiError::bad_request("invalid_query", message).with_field(first));
    }
    if params.replay.is_some_and(|n| n > MAX_REPLAY) {
        let message = format!("`replay` is at most {MAX_REPLAY}");
        return Err(ApiError::bad_request("invalid_query", message).with_field("replay"));
    }
    let window = TimeWindow {
        since: utc("replay_since", params.replay_since.clone())?,
        until: utc("replay_until", params.replay_until.clone())?,
    };
    if let (Some(since), Some(until)) = (window.since, window.until)
        && since >= until
    {
        let message = "`replay_since` must be before `replay_until`";
        return Err(ApiError::bad_request("invalid_query", message).with_field("replay_since"));
    }
    Ok(Some((params.replay.unwrap_or(MAX_REPLAY), window)))
}

#[utoipa::path(
    put,
    path = "/v1/policies",
    operation_id = "put_policies",
    tag = "policies",
    summary = "Replace the policy bundle, or preview what replacing it would change",
    description = "Validated, then swapped in atomically. A bad bundle is refused (400, \
        `invalid_bundle`, with located `diagnostics`: syntax and type errors, a forbid that can never \
        apply, a rule that rejects its configuration) and the old one stays active. A bundle that loads \
        may still carry warnings (a permit that can never apply, a condition that can never hold): \
        they come back in `diagnostics`, each with `\"severity\": \"warning\"`. With `dry_run=true` \
        nothing changes and the answer carries the change's `impact` over the stored entities \
        (docs/impact.md); with `max_new_permits=N` a change that newly permits more than N requests \
        is refused with 409.",
    request_body = Upload,
    params(ReplaceParams),
    responses(
        (status = 200, description = "what the change did (or, dry run, would do), and the new bundle's warnings", body = Replaced),
        (status = 409, description = "`too_many_new_permits`: the change widens access more than `max_new_permits`", body = ErrorBody),
    ),
    security(("bearer" = ["policy:admin"]))
)]
async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(params): ApiQuery<ReplaceParams>,
    ApiJson(upload): ApiJson<Upload>,
) -> Result<Json<Replaced>, ApiError> {
    let replay = replayed(&params)?;
    let source = BundleSource::from_files(upload.files.0)?;
    let activation = if params.dry_run {
        state.preview(source, replay).await?
    } else {
        let activation =
            state.activate_gated(source, BundleOrigin::Api, &caller.actor(), params.max_new_permits).await?;
        tracing::info!(digest = %activation.digest, previous = %activation.previous_digest, "policy bundle uploaded");
        activation
    };
    if let (true, Some(max), Some(impact)) = (params.dry_run, params.max_new_permits, &activation.impact)
        && impact.newly_permitted > max
    {
        return Err(ChangeError::TooManyNewPermits { max, impact: Box::new(impact.clone()) }.into());
    }
    let Activation { digest, previous_digest, changed, policies, warnings, impact, replay } = activation;
    let diagnostics = warnings.into_iter().map(Diagnostic::warning).collect();
    let impact = impact.map(|i| serde_json::to_value(i).unwrap_or_default());
    let replay = replay.map(|r| serde_json::to_value(r).unwrap_or_default());
    Ok(Json(Replaced {
        dry_run: params.dry_run,
        digest,
        previous_digest,
        changed,
        policies,
        diagnostics,
        impact,
        replay,
    }))
}

/// What `PUT /v1/policies` did (an [`Activation`]), with what loading found
/// worth telling.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PolicyActivation)]
pub struct Replaced {
    /// Whether this was a dry run: then nothing changed, and `digest` is
    /// the bundle that would be active.
    dry_run: bool,
    /// The bundle now active.
    digest: String,
    previous_digest: String,
    /// Whether the digest changed.
    changed: bool,
    /// How many policies the bundle has.
    policies: usize,
    /// The new bundle's warnings (docs/cli.md#check), located like the
    /// errors of a refused upload; empty when it has none.
    diagnostics: Vec<Diagnostic>,
    /// With `dry_run` or `max_new_permits`: what the change does to
    /// decisions over the stored entities (docs/impact.md): `at`,
    /// `newly_permitted`, `newly_denied`, `decided`, per action and type
    /// pair `actions[]` (`compared`, `changed_policies`, `by_policy`,
    /// `examples` of flips), and `not_covered[]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    impact: Option<serde_json::Value>,
    /// With `dry_run` and `replay=N`: the newest N logged decisions asked
    /// again under the new bundle (docs/impact.md#replaying-logged-decisions):
    /// `replayed`, `newly_permitted`, `newly_denied`, `drifted`,
    /// `examples[]` (`seq`, `principal`, `action`, `resource`, `allowed`,
    /// `by`, `drifted`), `not_replayable` and `not_replayable_examples[]`
    /// (`seq`, `reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    replay: Option<serde_json::Value>,
}
