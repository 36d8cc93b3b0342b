//! The `http` output binding (Dapr's `bindings.http`): one HTTP request per invocation.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use layotto_core::binding::{BindingRequest, BindingResponse, OutputBinding};
use layotto_core::metadata::{MillisDuration, decode};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Metadata, Result};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

/// Type string of [`HttpBinding`].
pub const TYPE: &str = "http";
/// Component metadata key of the base URL (required; `http` or `https`).
pub const URL_KEY: &str = "url";
/// Component metadata key of the whole-request timeout: milliseconds, or a duration such as
/// `"5s"`, `"500ms"`, `"2m"`. Default 30 s.
pub const RESPONSE_TIMEOUT_KEY: &str = "responseTimeout";
/// Component metadata key: whether a non-2xx status is an error (default `true`).
pub const ERROR_IF_NOT_2XX_KEY: &str = "errorIfNot2XX";
/// Component metadata key of a token sent on every request (with [`SECURITY_TOKEN_HEADER_KEY`]).
pub const SECURITY_TOKEN_KEY: &str = "securityToken";
/// Component metadata key of the header carrying [`SECURITY_TOKEN_KEY`].
pub const SECURITY_TOKEN_HEADER_KEY: &str = "securityTokenHeader";
/// Component metadata key of the binding direction; only `output` is supported.
pub const DIRECTION_KEY: &str = "direction";
/// Request metadata key of the path appended to the base URL.
pub const PATH_KEY: &str = "path";
/// Response metadata key of the numeric status code.
pub const STATUS_CODE_KEY: &str = "statusCode";
/// Response metadata key of the status line, e.g. `"200 OK"`.
pub const STATUS_KEY: &str = "status";
/// Default of [`RESPONSE_TIMEOUT_KEY`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The supported operations; `create` is `post`.
pub const OPERATIONS: &[&str] = &[
    "create", "get", "head", "post", "put", "patch", "delete", "options", "trace",
];
const DEFAULT_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Bytes of the response body quoted in an error.
const ERROR_BODY_SNIPPET: usize = 512;

/// Metadata of [`HttpBinding`] (Dapr's `bindings.http` keys it implements).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpBindingMetadata {
    /// `url`: the base URL, `http` or `https` (required).
    pub url: Option<String>,
    /// `responseTimeout`: whole-request timeout, milliseconds or a duration such as `"5s"`
    /// (default 30 s; must be positive).
    pub response_timeout: Option<MillisDuration>,
    /// `errorIfNot2XX`: whether a status outside 2xx is an error (default true).
    #[serde(rename = "errorIfNot2XX")]
    pub error_if_not_2xx: Option<bool>,
    /// `securityToken`: a token sent on every request (needs `securityTokenHeader`).
    pub security_token: Option<String>,
    /// `securityTokenHeader`: the header carrying `securityToken`.
    pub security_token_header: Option<String>,
    /// `direction`: only `output` is supported.
    pub direction: Option<String>,
}

impl ComponentMetadata for HttpBindingMetadata {}

/// Invokes an HTTP endpoint (type `http`).
///
/// Request metadata `path` is appended to the base URL; every request metadata key starting
/// with an upper-case letter (e.g. `Content-Type`) is sent as a header, as Dapr does. The reply
/// carries the body and metadata `statusCode`, `status` and the response headers (names in
/// canonical `Content-Type` form, repeated values joined by `", "`).
#[derive(Debug)]
pub struct HttpBinding {
    name: String,
    url: Url,
    timeout: Duration,
    error_if_not_2xx: bool,
    token: Option<(HeaderName, HeaderValue)>,
    client: OnceLock<reqwest::Client>,
}

impl HttpBinding {
    /// Factory: [`HttpBindingMetadata`]. Builds no client (that happens in `init`).
    ///
    /// # Errors
    /// Invalid argument naming the key: missing or non-http(s) `url`, bad timeout or boolean,
    /// a token without its header (or the reverse), a bad header name, another direction.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: HttpBindingMetadata = decode(spec)?;
        let ctx =
            |m: String| Error::invalid(format!("component '{}' (type '{TYPE}'): {m}", spec.name));
        let raw = meta
            .url
            .as_deref()
            .ok_or_else(|| ctx(format!("metadata '{URL_KEY}' is required")))?;
        let url = Url::parse(raw.trim())
            .map_err(|e| ctx(format!("metadata '{URL_KEY}' is not a URL ('{raw}'): {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ctx(format!(
                "metadata '{URL_KEY}' must be an http or https URL with a host, got '{raw}'"
            )));
        }
        let timeout = meta.response_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        if timeout.is_zero() {
            return Err(ctx(format!(
                "metadata '{RESPONSE_TIMEOUT_KEY}' must be positive"
            )));
        }
        if let Some(d) = meta.direction.as_deref()
            && d.trim() != "output"
        {
            return Err(ctx(format!(
                "metadata '{DIRECTION_KEY}' must be 'output' (input is not supported), got '{d}'"
            )));
        }
        let token = match (
            meta.security_token_header.as_deref(),
            meta.security_token.as_deref(),
        ) {
            (None, None) => None,
            (Some(h), Some(t)) => {
                let name = HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                    ctx(format!(
                        "metadata '{SECURITY_TOKEN_HEADER_KEY}' is not a valid header name: '{h}'"
                    ))
                })?;
                let mut value = HeaderValue::from_str(t).map_err(|_| {
                    ctx(format!(
                        "metadata '{SECURITY_TOKEN_KEY}' is not a valid header value"
                    ))
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
            _ => {
                return Err(ctx(format!(
                    "metadata '{SECURITY_TOKEN_KEY}' and '{SECURITY_TOKEN_HEADER_KEY}' must be \
                     given together"
                )));
            }
        };
        Ok(Self {
            name: spec.name.clone(),
            url,
            timeout,
            error_if_not_2xx: meta.error_if_not_2xx.unwrap_or(true),
            token,
            client: OnceLock::new(),
        })
    }

    fn ctx(&self) -> String {
        format!("http binding '{}'", self.name)
    }

    /// The HTTP client, built on first use. Installs the `ring` rustls crypto provider as the
    /// process default if none is installed yet.
    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race against another installer is fine: a provider is then installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| {
                Error::internal(format!("{}: cannot build HTTP client: {e}", self.ctx()))
            })?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Base URL with `path` appended (Dapr: base without trailing `/` + `/` + path without
    /// leading `/`).
    fn target(&self, path: Option<&str>) -> Result<Url> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Ok(self.url.clone());
        };
        let joined = format!(
            "{}/{}",
            self.url.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        Url::parse(&joined).map_err(|e| {
            Error::invalid(format!(
                "{}: request metadata '{PATH_KEY}' gives an invalid URL '{joined}': {e}",
                self.ctx()
            ))
        })
    }

    fn headers(&self, metadata: &Metadata, has_body: bool) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        if has_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
        }
        headers.insert(ACCEPT, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
        if let Some((name, value)) = &self.token {
            headers.insert(name.clone(), value.clone());
        }
        for (k, v) in metadata {
            if !k.chars().next().is_some_and(char::is_uppercase) {
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                Error::invalid(format!(
                    "{}: request metadata '{k}' is not a valid header name",
                    self.ctx()
                ))
            })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                Error::invalid(format!(
                    "{}: request metadata '{k}' is not a valid header value",
                    self.ctx()
                ))
            })?;
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

/// `content-type` -> `Content-Type` (Go's canonical header form, which Dapr clients see).
fn canonical_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

#[async_trait]
impl Component for HttpBinding {
    /// Builds the HTTP client. Errors: internal when the client cannot be built.
    async fn init(&self) -> Result<()> {
        self.client().map(|_| ())
    }
}

#[async_trait]
impl OutputBinding for HttpBinding {
    /// [`OPERATIONS`].
    fn operations(&self) -> Vec<String> {
        OPERATIONS.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Sends the request. Errors: invalid argument for an unknown operation, a bad `path` or
    /// header; unavailable when the endpoint cannot be reached or the timeout passes; internal
    /// for a status outside 2xx (with `errorIfNot2XX`, naming the status and quoting the body).
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse> {
        let method = match req.operation.as_str() {
            "create" | "post" => Method::POST,
            "get" => Method::GET,
            "head" => Method::HEAD,
            "put" => Method::PUT,
            "patch" => Method::PATCH,
            "delete" => Method::DELETE,
            "options" => Method::OPTIONS,
            "trace" => Method::TRACE,
            other => {
                return Err(Error::invalid(format!(
                    "{}: operation '{other}' is not supported; supported: {}",
                    self.ctx(),
                    OPERATIONS.join(", ")
                )));
            }
        };
        let url = self.target(req.metadata.get(PATH_KEY).map(String::as_str))?;
        let has_body = !req.data.is_empty();
        let headers = self.headers(&req.metadata, has_body)?;
        let client = self.client()?;
        let mut builder = client.request(method.clone(), url.clone()).headers(headers);
        if has_body {
            builder = builder.body(req.data);
        }
        let shown = format!("{method} {url}");
        let resp = builder.send().await.map_err(|e| {
            let msg = format!("{}: {shown} failed: {e}", self.ctx());
            if e.is_timeout() || e.is_connect() {
                Error::unavailable(msg)
            } else {
                Error::internal(msg)
            }
        })?;
        let status = resp.status();
        let mut metadata = Metadata::new();
        metadata.insert(STATUS_CODE_KEY.to_owned(), status.as_u16().to_string());
        metadata.insert(
            STATUS_KEY.to_owned(),
            format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            )
            .trim_end()
            .to_owned(),
        );
        for name in resp.headers().keys() {
            let values: Vec<&str> = resp
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            metadata.insert(canonical_header(name.as_str()), values.join(", "));
        }
        let body: Bytes = resp.bytes().await.map_err(|e| {
            let msg = format!("{}: {shown}: reading the response failed: {e}", self.ctx());
            if e.is_timeout() {
                Error::unavailable(msg)
            } else {
                Error::internal(msg)
            }
        })?;
        if self.error_if_not_2xx && !status.is_success() {
            let end = body.len().min(ERROR_BODY_SNIPPET);
            return Err(Error::internal(format!(
                "{}: {shown} returned status {}: {}",
                self.ctx(),
                status.as_u16(),
                String::from_utf8_lossy(&body[..end])
            )));
        }
        Ok(BindingResponse {
            data: body,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use layotto_core::ErrorKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// What the test server saw of one request.
    #[derive(Debug)]
    struct Seen {
        method: String,
        target: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    /// A minimal HTTP/1.1 server: answers each request with `status` and body `reply`, and
    /// reports what it received.
    async fn serve(
        status: u16,
        reply: &'static str,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_owned();
                    let target = first.next().unwrap_or_default().to_owned();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let _ = tx.send(Seen {
                        method,
                        target,
                        headers,
                        body,
                    });
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nx-multi: a\r\nx-multi: b\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/base/"), rx)
    }

    fn binding(url: &str) -> HttpBinding {
        HttpBinding::from_spec(
            &ComponentSpec::new("hb", TYPE)
                .with(URL_KEY, url)
                .with(RESPONSE_TIMEOUT_KEY, "5s"),
        )
        .expect("spec")
    }

    fn request(op: &str, data: &'static str, md: &[(&str, &str)]) -> BindingRequest {
        BindingRequest {
            operation: op.into(),
            data: Bytes::from_static(data.as_bytes()),
            metadata: md
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[tokio::test]
    async fn post_with_path_and_headers() {
        let (url, mut seen) = serve(201, "created").await;
        let b = binding(&url);
        b.init().await.expect("init");
        let resp = b
            .invoke(request(
                "create",
                "{\"a\":1}",
                &[
                    ("path", "/things/1?x=y"),
                    ("X-Trace", "t1"),
                    ("ttlInSeconds", "5"),
                ],
            ))
            .await
            .expect("invoke");
        assert_eq!(resp.data, Bytes::from_static(b"created"));
        assert_eq!(
            resp.metadata.get(STATUS_CODE_KEY).map(String::as_str),
            Some("201")
        );
        assert_eq!(
            resp.metadata.get("X-Multi").map(String::as_str),
            Some("a, b")
        );
        assert_eq!(
            resp.metadata.get("Content-Length").map(String::as_str),
            Some("7")
        );
        let s = seen.recv().await.expect("request seen");
        assert_eq!(s.method, "POST");
        assert_eq!(s.target, "/base/things/1?x=y");
        assert_eq!(s.body, b"{\"a\":1}");
        assert_eq!(s.headers.get("x-trace").map(String::as_str), Some("t1"));
        assert_eq!(
            s.headers.get("content-type").map(String::as_str),
            Some(DEFAULT_CONTENT_TYPE)
        );
        assert!(
            !s.headers.contains_key("ttlinseconds"),
            "lower-case keys are no headers"
        );
        assert!(!s.headers.contains_key("path"));
    }

    #[tokio::test]
    async fn get_and_errors() {
        let (url, mut seen) = serve(200, "ok").await;
        let b = binding(&url);
        let resp = b.invoke(request("get", "", &[])).await.expect("get");
        assert_eq!(resp.data, Bytes::from_static(b"ok"));
        let s = seen.recv().await.expect("seen");
        assert_eq!((s.method.as_str(), s.target.as_str()), ("GET", "/base/"));

        let e = b
            .invoke(request("explode", "", &[]))
            .await
            .expect_err("bad op");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("explode"), "{e}");
        let e = b
            .invoke(request("get", "", &[("Bad Header", "x")]))
            .await
            .expect_err("bad header");
        assert!(e.message.contains("Bad Header"), "{e}");

        let (url, _seen) = serve(404, "no such thing").await;
        let e = binding(&url)
            .invoke(request("delete", "", &[]))
            .await
            .expect_err("404");
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(
            e.message.contains("404") && e.message.contains("no such thing"),
            "{e}"
        );

        let lenient = HttpBinding::from_spec(
            &ComponentSpec::new("hb", TYPE)
                .with(URL_KEY, url.as_str())
                .with(ERROR_IF_NOT_2XX_KEY, "false"),
        )
        .expect("spec");
        let resp = lenient
            .invoke(request("get", "", &[]))
            .await
            .expect("lenient");
        assert_eq!(
            resp.metadata.get(STATUS_CODE_KEY).map(String::as_str),
            Some("404")
        );

        // Nothing listens on a freshly closed port.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let e = binding(&format!("http://127.0.0.1:{port}"))
            .invoke(request("get", "", &[]))
            .await
            .expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let spec = |pairs: &[(&str, &str)]| {
            let mut s = ComponentSpec::new("hb", TYPE);
            for (k, v) in pairs {
                s = s.with(*k, *v);
            }
            HttpBinding::from_spec(&s)
        };
        for (pairs, key) in [
            (&[][..], URL_KEY),
            (&[(URL_KEY, "ftp://x")][..], URL_KEY),
            (&[(URL_KEY, "not a url")][..], URL_KEY),
            (
                &[(URL_KEY, "http://x"), (RESPONSE_TIMEOUT_KEY, "soon")][..],
                RESPONSE_TIMEOUT_KEY,
            ),
            (
                &[(URL_KEY, "http://x"), (SECURITY_TOKEN_KEY, "t")][..],
                SECURITY_TOKEN_HEADER_KEY,
            ),
            (
                &[(URL_KEY, "http://x"), (DIRECTION_KEY, "input")][..],
                DIRECTION_KEY,
            ),
        ] {
            let e = spec(pairs).expect_err(key);
            assert!(e.message.contains(key), "{key}: {e}");
        }
        let ok = spec(&[
            (URL_KEY, "https://example.invalid"),
            (RESPONSE_TIMEOUT_KEY, "1500"),
            ("keyPrefix", "none"),
        ])
        .expect("valid");
        assert_eq!(ok.timeout, Duration::from_millis(1500));
        // An unknown key is no error, only a warning naming it.
        let bogus = [(URL_KEY, "http://x"), ("bogus", "1")];
        spec(&bogus).expect("unknown keys are ignored");
        let md: Metadata = bogus
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let w = layotto_core::MetadataKeys::of::<HttpBindingMetadata>()
            .warnings_with(&md, layotto_core::Kind::Binding.info().runtime_keys);
        assert!(w.len() == 1 && w[0].contains("'bogus'"), "{w:?}");
        assert_eq!(canonical_header("x-request-id"), "X-Request-Id");
    }
}
