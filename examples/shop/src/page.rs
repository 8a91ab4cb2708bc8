//! The shop's web page at `/`: one HTML file, its script and its style, compiled into
//! the binary, so every instance serves the same page with no front-end server.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/shop.js");
const STYLE: &str = include_str!("../assets/shop.css");

/// Only this origin's script and style run (no inline code), and the page may not be
/// framed by another site.
const POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`, `/assets/shop.js` and `/assets/shop.css`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route(
            "/assets/shop.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/assets/shop.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            // The page changes with the binary: revalidating is cheap and never stale.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
