//! Service invocation (`dapr/dapr:pkg/api/http/directmessaging.go`; docs.dapr.io "Service
//! invocation API reference").
//!
//! `<VERB> /v1.0/invoke/{app_id}/method/{method...}`: the verb, the method path as sent
//! (still percent-encoded, as Dapr takes it from `URL.RawPath`), the raw query, the content
//! type, the body and the headers (minus [`layotto_dapr_wire::headers::NOT_FORWARDED`]: hop-by-hop
//! headers, `Host`, `Content-Length`, `dapr-api-token` and `dapr-app-id`) go to the app; its status, content type, headers and
//! body come back. Failures are `ERR_DIRECT_INVOKE`: 403 when denied, else 500
//! (`predefined.go` `ErrDirectInvoke`, "failed to invoke, id: %s, err: %v").

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use layotto_core::{Error, ErrorKind};
use layotto_runtime::{Body, InvokeRequest, limited};

use layotto_dapr_wire::headers::forwarded;

use super::Ctx;
use super::error::{ApiError, ERR_BODY_READ, Op, err};

/// The method part of `/v1.0/invoke/<app>/method/<method>`, as sent.
fn raw_method(uri: &Uri) -> String {
    let path = uri.path();
    let after = path
        .find("/invoke/")
        .map_or(path, |i| &path[i + "/invoke/".len()..]);
    after
        .find("/method/")
        .map_or("", |i| &after[i + "/method/".len()..])
        .to_owned()
}

/// `* /v1.0/invoke/{app_id}/method/{method...}`.
pub(crate) async fn invoke(
    State(ctx): State<Ctx>,
    Path((app_id, _method)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    data: axum::body::Body,
) -> Result<Response, ApiError> {
    let target = raw_method(&uri);
    forward(&ctx, &app_id, target, &method, query, &headers, data).await
}

/// `path` as Go's `path.Clean` leaves it: `.` and `..` resolved (never above the root),
/// repeated and trailing slashes removed.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Any other path with a `dapr-app-id` header (daprd's fallback route): the whole path,
/// cleaned, is the method of that app. Without the header: daprd's 404 `ERR_DIRECT_INVOKE`,
/// or a plain 404 when the allow and deny lists close invocation.
pub(crate) async fn by_header(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    data: axum::body::Body,
) -> Result<Response, ApiError> {
    let app_id = headers
        .get(layotto_dapr_wire::headers::APP_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && ctx.shared.invoke_open)
        .map(str::to_owned);
    let Some(app_id) = app_id else {
        if !ctx.shared.invoke_open {
            return Ok((StatusCode::NOT_FOUND, "404 page not found\n").into_response());
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            layotto_dapr_wire::errors::ERR_DIRECT_INVOKE,
            "failed getting app id either from the URL path or the header dapr-app-id",
        ));
    };
    let target = clean_path(uri.path()).trim_start_matches('/').to_owned();
    forward(&ctx, &app_id, target, &method, query, &headers, data).await
}

/// The caller's body: whole when it is small, else streamed on as it arrives
/// ([`Body::buffered`]), at most `--max-body-size` bytes (413 `ERR_BODY_READ` when its
/// `Content-Length` says more; a longer chunked body fails the call where it passes the limit).
async fn request_body(
    ctx: &Ctx,
    headers: &HeaderMap,
    data: axum::body::Body,
) -> Result<Body, ApiError> {
    let limit = ctx.shared.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ERR_BODY_READ,
            format!(
                "failed to read request body: the body exceeds the maximum of {limit} bytes \
                 (--max-body-size)"
            ),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let chunks = data
        .into_data_stream()
        .map(|c| c.map_err(|e| Error::unavailable(format!("reading the request body: {e}"))))
        .boxed();
    Body::buffered(limited(chunks, limit))
        .await
        .map_err(|e| match e.kind {
            ErrorKind::InvalidArgument => too_large(),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                ERR_BODY_READ,
                format!("failed to read request body: {}", e.message),
            ),
        })
}

/// One invocation of `target` on `app_id` with the caller's verb, query, headers and body.
async fn forward(
    ctx: &Ctx,
    app_id: &str,
    target: String,
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    data: axum::body::Body,
) -> Result<Response, ApiError> {
    let data = request_body(ctx, headers, data).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let req = InvokeRequest {
        method: target,
        http_verb: method.as_str().to_ascii_uppercase(),
        query: query.unwrap_or_default(),
        content_type,
        data,
        headers: headers
            .iter()
            .filter(|(n, _)| forwarded(n.as_str()))
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let resp = ctx
        .rt
        .invoke_service(app_id, &req)
        .await
        .map_err(err(Op::Invoke { app_id }))?;
    let status = match resp.status {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let mut out = match resp.data.as_bytes() {
        Some(b) => (status, b.clone()).into_response(),
        None => (
            status,
            axum::body::Body::from_stream(resp.data.into_stream()),
        )
            .into_response(),
    };
    let h = out.headers_mut();
    for (name, value) in &resp.headers {
        if !forwarded(name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    }
    if !resp.content_type.is_empty()
        && let Ok(v) = HeaderValue::from_str(&resp.content_type)
    {
        h.insert(header::CONTENT_TYPE, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_go_does() {
        assert_eq!(clean_path("/a/b/../c"), "/a/c");
        assert_eq!(clean_path("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(clean_path("//a/./b/"), "/a/b");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn method_is_taken_raw() {
        let uri: Uri = "/v1.0/invoke/app1/method/orders/a%2Fb?x=1"
            .parse()
            .expect("uri");
        assert_eq!(raw_method(&uri), "orders/a%2Fb");
        assert!(!forwarded("Connection"));
        assert!(!forwarded("dapr-api-token"));
        assert!(forwarded("x-custom"));
    }
}
