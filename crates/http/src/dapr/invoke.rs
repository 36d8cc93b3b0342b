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
use layotto_runtime::InvokeRequest;

use layotto_dapr_wire::headers::forwarded;

use super::Ctx;
use super::error::{ApiError, Op, err};
use super::extract::RawBody;

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
    RawBody(data): RawBody,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let req = InvokeRequest {
        method: raw_method(&uri),
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
        .invoke_service(&app_id, &req)
        .await
        .map_err(err(Op::Invoke { app_id: &app_id }))?;
    let status = match resp.status {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let mut out = (status, resp.data).into_response();
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
