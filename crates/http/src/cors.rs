//! CORS on Dapr's HTTP API (`--allowed-origins`), as daprd v1.14 configures `go-chi/cors`
//! (`dapr/dapr:pkg/api/http/server.go` `useCors`): nothing at all for the default `*`; else
//! the listed origins (comma-separated, compared in lower case; an entry with `*` is a
//! wildcard, e.g. `https://*.example.com`; a bare `*` entry allows any origin), methods GET,
//! POST and HEAD, request headers Origin, Accept and Content-Type, no credentials. Preflight
//! requests are answered by the layer and never reach a route.

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `allowed_origins`, or `None` for daprd's default `*`.
pub(crate) fn layer(allowed_origins: &str) -> Option<CorsLayer> {
    if allowed_origins == "*" {
        return None;
    }
    let origins: Vec<String> = allowed_origins
        .split(',')
        .map(str::to_ascii_lowercase)
        .collect();
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let origin = origin.to_ascii_lowercase();
            origins.iter().any(|o| origin_matches(o, &origin))
        })
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::HEAD])
            .allow_headers([header::ORIGIN, header::ACCEPT, header::CONTENT_TYPE]),
    )
}

/// Whether `origin` matches the allowed entry `pattern` (one `*` is a wildcard between a
/// prefix and a suffix, as go-chi/cors's).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            origin.len() >= prefix.len() + suffix.len()
                && origin.starts_with(prefix)
                && origin.ends_with(suffix)
        }
        None => pattern == origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_as_go_chi_cors() {
        assert!(layer("*").is_none());
        assert!(origin_matches(
            "https://*.example.com",
            "https://a.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(origin_matches(
            "http://localhost:8080",
            "http://localhost:8080"
        ));
        assert!(!origin_matches(
            "http://localhost:8080",
            "http://localhost:8081"
        ));
    }
}
