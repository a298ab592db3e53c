//! The web page at `/`: plain HTML, CSS and JavaScript from `web/`,
//! embedded in the binary at build time (no build step, no npm).
//!
//! The page is a client of the same API as the CLI; it holds no logic the
//! API does not. It is served without a token (it contains no data) and
//! with a strict Content-Security-Policy: only its own scripts, styles and
//! connections, never inside a frame.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::AppState;

#[derive(RustEmbed)]
#[folder = "../../web"]
struct Assets;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        return crate::AppError::not_found("no such page").into_response();
    };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Always revalidated, so a new yard never runs an old page's script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `/` and every file of the page, each at its own path.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new().route("/", get(|| async { asset("index.html") }));
    for path in Assets::iter() {
        let path = path.into_owned();
        let route = format!("/{path}");
        router = router.route(&route, get(move || async move { asset(&path) }));
    }
    router
}
