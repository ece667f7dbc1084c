//! The console, served whole from the binary: `GET /` and the console's
//! other page paths answer its `index.html`, `GET /assets/<file>` the
//! scripts and stylesheets it loads. It works on a host with no internet
//! and no Node.js: the files are the built bundle committed under
//! `console/dist/` (`cd console && npm ci && npm run build` rebuilds it),
//! embedded at compile time by `rust-embed` (a debug build reads them from
//! that directory instead, so a rebuilt bundle shows without recompiling).
//!
//! The console talks only to `POST /graphql`, `/graphql/ws` and the
//! content routes, like any other client. Its page paths are a fixed list
//! ([`PAGES`], plus `/recordings/<id>`): every other path stays 404, and
//! `/recordings/<id>/content` and the other content routes stay what they
//! are.
//!
//! The asset names carry a hash of their content, so they are cached for a
//! year; `index.html` is never cached, so a new binary's console loads at
//! once.
//!
//! The page carries a content security policy ([`CONTENT_SECURITY_POLICY`]):
//! it loads and calls its own origin only and cannot be framed.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use crate::state::HttpState;

/// The built console (`console/dist/`).
#[derive(RustEmbed)]
#[folder = "../console/dist"]
struct Bundle;

/// The console's pages with a fixed path; `/recordings/<id>` is the one
/// with a parameter.
pub const PAGES: &[&str] = &[
    "/",
    "/signin",
    "/recordings",
    "/live",
    "/servers",
    "/policies",
    "/access",
    "/audit",
];

/// The console's routes: its pages and `/assets/{file}`.
pub fn routes() -> Router<HttpState> {
    let mut router = Router::new()
        .route("/recordings/{id}", get(page))
        .route("/assets/{file}", get(asset));
    for path in PAGES {
        router = router.route(path, get(page));
    }
    router
}

/// What the console's page may load and talk to: its own origin only
/// (the API, the subscription socket, the assets), Blob URLs for the media
/// it plays and the terminal player's worker, WebAssembly (the terminal
/// player's emulator), inline styles for the charts; it may not be framed.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    connect-src 'self' blob:; media-src 'self' blob:; worker-src 'self' blob:; \
    img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A console page: `index.html`, which routes in the browser.
async fn page() -> Response {
    match Bundle::get("index.html") {
        Some(file) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            file.data,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the console is not built (cd console && npm ci && npm run build)\n",
        )
            .into_response(),
    }
}

/// `GET /assets/{file}`: one file of the bundle, or 404.
async fn asset(Path(file): Path<String>) -> Response {
    match Bundle::get(&format!("assets/{file}")) {
        Some(embedded) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            embedded.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The content type of a bundle file, by its extension.
fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_has_a_page_and_every_asset_it_references() {
        let index = Bundle::get("index.html").expect("console/dist/index.html");
        let html = std::str::from_utf8(&index.data).unwrap();
        let referenced: Vec<&str> = html
            .split('"')
            .filter(|piece| piece.starts_with("/assets/"))
            .collect();
        assert!(!referenced.is_empty(), "{html}");
        for path in referenced {
            let file = path.trim_start_matches('/');
            assert!(Bundle::get(file).is_some(), "{file} is not in the bundle");
            assert_ne!(content_type(file), "application/octet-stream", "{file}");
        }
    }
}
