//! The web dashboard's files: one page (`/`), its script and its style sheet, embedded in
//! the binary (no build step, no CDN: it works offline). They are served without a token,
//! as the page itself asks for one and keeps it in the browser's `sessionStorage`; every
//! API call and the event stream it makes carry the token (or a ticket made with it).
//!
//! The page runs under a strict `Content-Security-Policy`: scripts and styles only from
//! these files (nothing inline), connections only to this server, images only from it or
//! from `data:`/`blob:` URLs (the screenshot).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
const INDEX_HTML: &str = include_str!("dashboard/index.html");
/// Its script.
const APP_JS: &str = include_str!("dashboard/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("dashboard/app.css");

/// The paths of the dashboard's files: the guard lets them through without a token.
pub const PUBLIC_PATHS: [&str; 3] = ["/", "/assets/app.js", "/assets/app.css"];

/// What the page may load and connect to.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the dashboard's files (served without a token).
pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path)
}

/// One embedded file with its type and the headers every dashboard file carries.
fn file(body: &'static str, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    (headers, body).into_response()
}

/// The dashboard's routes: `/`, `/assets/app.js` and `/assets/app.css`.
pub fn routes() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { file(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { file(APP_CSS, "text/css; charset=utf-8") }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The policy forbids inline code; the page must not need it.
        let html = INDEX_HTML.to_ascii_lowercase();
        assert!(!html.contains("<style"), "no inline <style>");
        assert!(!html.contains(" style="), "no style attributes");
        let handler = html.split_whitespace().find(|word| {
            word.strip_prefix("on").is_some_and(|rest| {
                rest.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase())
                })
            })
        });
        assert_eq!(handler, None, "no inline event handlers");
        assert!(!html.contains("javascript:"), "no javascript: URLs");
        for script in html.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(
                tag.contains("src="),
                "every script is a file: <script{tag}>"
            );
        }
        assert!(html.contains("/assets/app.js") && html.contains("/assets/app.css"));
    }

    #[test]
    fn only_the_three_files_are_public() {
        for p in PUBLIC_PATHS {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/mcp",
            "/api/me",
            "/ws",
            "/events",
            "/assets/",
            "/index.html",
            "//",
        ] {
            assert!(!is_public(p), "{p}");
        }
    }
}
