//! Header rules of service invocation and authentication, for both edges and both app
//! channels.
//!
//! A caller's headers (HTTP) or metadata (gRPC) travel with an invocation to the app, except
//! the ones that describe one connection rather than the message (RFC 9110 section 7.6.1),
//! the ones the sidecar sets itself, and the sidecar's own API token: [`NOT_FORWARDED`].
//! The app's response headers come back under the same rule.

/// Header (gRPC metadata) carrying the API token (`dapr/dapr:pkg/security/consts`
/// `APITokenHeader`); the sidecar checks the caller's `DAPR_API_TOKEN` in it and sends the
/// app's `APP_API_TOKEN` to the app in it.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// Header naming the target app of an invocation.
pub const APP_ID_HEADER: &str = "dapr-app-id";

/// Headers never forwarded to (nor back from) the app, in lower case.
pub const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    API_TOKEN_HEADER,
    APP_ID_HEADER,
];

/// Whether header `name` (any case) may be forwarded to the app.
pub fn forwarded(name: &str) -> bool {
    !NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether gRPC metadata `name` of a caller may be forwarded to the app: [`forwarded`], and
/// not the gRPC transport's own (`grpc-*`, pseudo-headers, `user-agent`).
pub fn forwarded_from_grpc(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    forwarded(&n) && n != "user-agent" && !n.starts_with("grpc-") && !n.starts_with(':')
}

/// Whether `name` (any case) is one of IANA's permanent HTTP headers as daprd lists them
/// (`dapr/dapr:pkg/messaging/v1/util.go` `isPermanentHTTPHeader`): daprd prefixes these with
/// `dapr-` when it turns an app's HTTP headers into gRPC metadata.
pub fn is_permanent_http_header(name: &str) -> bool {
    const PERMANENT: [&str; 28] = [
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "cache-control",
        "content-type",
        "content-length",
        "cookie",
        "date",
        "expect",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "via",
        "warning",
    ];
    PERMANENT.iter().any(|p| p.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_list() {
        assert!(!forwarded("Connection"));
        assert!(!forwarded("dapr-api-token"));
        assert!(!forwarded("Content-Type"));
        assert!(forwarded("x-custom"));
        assert!(!forwarded_from_grpc("grpc-timeout"));
        assert!(!forwarded_from_grpc(":authority"));
        assert!(!forwarded_from_grpc("DAPR-APP-ID"));
        assert!(forwarded_from_grpc("x-custom"));
    }

    #[test]
    fn permanent_headers_are_daprds_list() {
        assert!(is_permanent_http_header("Content-Type"));
        assert!(is_permanent_http_header("if-none-match"));
        assert!(!is_permanent_http_header("authorization"));
        assert!(!is_permanent_http_header("x-custom"));
    }
}
