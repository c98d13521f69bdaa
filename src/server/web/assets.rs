//! The page itself: the files of `web/` (the browser client), embedded in the binary so a
//! server needs nothing beside it and works offline, served with headers that keep the page
//! to itself.
//!
//! Every response, the page's files and refusals alike, carries a Content-Security-Policy that
//! allows scripts only from this origin (no inline script, no `eval`), connections only back to
//! it, and no framing; the page uses no cookies, so nothing rides along with a request another
//! site makes.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use super::Door;

/// `web/`, minus what is only for people working on the page.
#[derive(Embed)]
#[folder = "web/"]
#[exclude = "README.md"]
#[exclude = "vendor/fetch.sh"]
struct Page;

/// What the page learns about the server before signing in: the `binding` its proof needs.
#[derive(serde::Serialize)]
struct ServerFacts<'a> {
    server: &'static str,
    /// `sha256:…` of the certificate this door presents, or `plaintext`.
    binding: &'a str,
}

/// `GET /ferry.json`.
pub(super) async fn server_facts(State(door): State<Door>) -> Response {
    let facts = ServerFacts {
        server: concat!("ferry ", env!("CARGO_PKG_VERSION")),
        binding: &door.state.binding,
    };
    match serde_json::to_vec(&facts) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /…`: one of the page's files (`/` is `index.html`), or 404.
pub(super) async fn page_file(uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        path => path,
    };
    match Page::get(path) {
        Some(file) => {
            let mime = HeaderValue::from_str(file.metadata.mimetype())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                [
                    (header::CONTENT_TYPE, mime),
                    // The page changes with the binary: always ask, never serve a stale script.
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

/// The headers every response of the web door carries.
pub(super) async fn security_headers(mut response: Response) -> Response {
    // Styles may be inline: the terminal (xterm.js) sizes its rows with a style element it
    // makes. Scripts may not.
    const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
        img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
        base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_scripts_are_embedded() {
        for path in [
            "index.html",
            "favicon.svg",
            "js/app.js",
            "vendor/xterm/xterm.mjs",
        ] {
            assert!(Page::get(path).is_some(), "{path} is not embedded");
        }
        assert!(Page::get("README.md").is_none());
    }
}
