//! The auditor's console (docs/console.md): a static page, its script and
//! stylesheet, compiled into the binary (`service/console/`), so it works
//! offline and building needs no JavaScript toolchain. The page holds no
//! data: everything it shows it fetches with the key the auditor types in,
//! through the same guarded API as any client.
//!
//! Served public, with a Content-Security-Policy that allows only this
//! origin's own script, style and API (no inline script, no other origin),
//! and no referrer, so nothing the page shows leaks through a link.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::error::ApiError;
use crate::state::AppState;

/// The console's files: name, media type, content.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../console/index.html")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("../../console/console.js")),
    ("verify.js", "text/javascript; charset=utf-8", include_str!("../../console/verify.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("../../console/console.css")),
];

/// Only this origin; nothing inline, nothing framed, no form posted elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(index))
        .route("/console/{file}", get(file))
}

/// The console's page.
#[utoipa::path(
    get,
    path = "/console/",
    operation_id = "console",
    tag = "console",
    summary = "The auditor's console (public page; its data needs an `audit:read` key)",
    responses((status = 200, description = "the page", body = String, content_type = "text/html"))
)]
async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

/// One of the console's files (`console.js`, `verify.js`, `console.css`).
#[utoipa::path(
    get,
    path = "/console/{file}",
    operation_id = "console_file",
    tag = "console",
    summary = "A file of the console (public)",
    params(("file" = String, Path, description = "`index.html`, `console.js`, `verify.js` or `console.css`")),
    responses(
        (status = 200, description = "the file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/html")
        )),
        (status = 404, description = "no such file (`not_found`)", body = super::error::ErrorBody),
    )
)]
async fn file(Path(name): Path<String>) -> Response {
    serve(&name).unwrap_or_else(|e| e.into_response())
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let (_, media_type, content) = FILES
        .iter()
        .find(|(file, ..)| *file == name)
        .ok_or_else(|| ApiError::not_found(format!("the console has no file `{name}`")))?;
    let mut response = (*content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidated on every load, so a new binary's console is used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
