//! The mutating admission webhook: `POST /mutate` takes an `admission.k8s.io/v1` (or
//! `v1beta1`) `AdmissionReview` of a Pod and answers with the sidecar patch
//! ([`crate::patch::pod_patch`]) as a base64 `JSONPatch`, over TLS; `GET /healthz` answers
//! 200. Anything that is not a Pod is admitted unchanged, as Dapr's injector does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::patch::{Decision, InjectorConfig, pod_patch};

/// What to do with a pod annotated for a sidecar that cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Deny its creation with the problems as the message (default).
    Refuse,
    /// Admit it unchanged, the problems as admission warnings.
    Admit,
}

/// The webhook's settings.
#[derive(Clone)]
pub struct Webhook {
    /// How sidecars are built.
    pub injector: InjectorConfig,
    /// What a pod the injector cannot handle gets.
    pub on_error: OnError,
    /// Where to apply each injected app's `<app-id>-dapr` Service ([`crate::service`]);
    /// `None`: not applied.
    pub services: Option<kube::Client>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("injector", &self.injector)
            .field("on_error", &self.on_error)
            .field("services", &self.services.is_some())
            .finish()
    }
}

impl Webhook {
    /// The `AdmissionReview` answering `review` (the request's JSON).
    ///
    /// # Errors
    /// A message when `review` is no `AdmissionReview` with a `request.uid`.
    pub fn review(&self, review: &Value) -> Result<Value, String> {
        let req = review
            .get("request")
            .filter(|r| r.is_object())
            .ok_or("AdmissionReview without a request")?;
        let uid = req["uid"]
            .as_str()
            .ok_or("AdmissionReview request without a uid")?;
        let mut response = json!({"uid": uid, "allowed": true});
        let is_pod = req["kind"]["kind"].as_str() == Some("Pod")
            && req["kind"]["group"].as_str().unwrap_or_default().is_empty();
        if is_pod && req["object"].is_object() {
            let mut pod = req["object"].clone();
            // Pods a controller creates carry their namespace only in the request.
            if pod["metadata"]["namespace"].is_null()
                && let Some(ns) = req["namespace"].as_str()
            {
                pod["metadata"]["namespace"] = json!(ns);
            }
            match pod_patch(&pod, &self.injector) {
                Decision::Unchanged => {}
                Decision::Patch {
                    ops,
                    warnings,
                    sidecar,
                } => {
                    let dry_run = req["dryRun"].as_bool().unwrap_or(false);
                    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
                    if let (Some(client), false) = (&self.services, dry_run) {
                        let (client, ns) = (client.clone(), namespace.to_owned());
                        tokio::spawn(async move {
                            if let Err(e) = crate::service::apply(&client, &sidecar, &ns).await {
                                tracing::warn!("injector: {e}");
                            }
                        });
                    }
                    let patch = serde_json::to_vec(&ops).map_err(|e| e.to_string())?;
                    response["patchType"] = json!("JSONPatch");
                    response["patch"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(patch));
                    if !warnings.is_empty() {
                        response["warnings"] = json!(warnings);
                    }
                }
                Decision::Refuse(problems) => {
                    let message = format!("layotto-rs sidecar injector: {}", problems.join("; "));
                    match self.on_error {
                        OnError::Refuse => {
                            response["allowed"] = json!(false);
                            response["status"] =
                                json!({"code": 400, "reason": "BadRequest", "message": message});
                        }
                        OnError::Admit => {
                            response["warnings"] =
                                json!([format!("{message} (admitted without the sidecar)")]);
                        }
                    }
                }
            }
        }
        Ok(json!({
            "apiVersion": review["apiVersion"].as_str().unwrap_or("admission.k8s.io/v1"),
            "kind": "AdmissionReview",
            "response": response,
        }))
    }

    /// The HTTP routes: `POST /mutate`, `GET /healthz`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/mutate", post(mutate))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(Arc::new(self))
    }
}

async fn mutate(State(w): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().map(str::trim) == Some("application/json"));
    if !json_type {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
            .into_response();
    }
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("body is no JSON: {e}")).into_response();
        }
    };
    match w.review(&review) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

/// A rustls server config from PEM files: the certificate chain and its private key. The
/// files are read again when they change (checked at most every 10 s, at a handshake), so a
/// renewed certificate (cert-manager, a rotated Secret) is served without a restart.
///
/// # Errors
/// A file that cannot be read or holds no certificate / key, or a key that does not match.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert, key, provider.clone())?;
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver)))
}

/// What [`ReloadingCert`] serves: the certificate, the files' modification times it was read
/// at, and when they were last checked.
type Loaded = (
    Arc<rustls::sign::CertifiedKey>,
    [Option<std::time::SystemTime>; 2],
    std::time::Instant,
);

/// The serving certificate, re-read when its files change.
#[derive(Debug)]
struct ReloadingCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: std::sync::Mutex<Loaded>,
}

impl ReloadingCert {
    fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, String> {
        let certified = read_certified(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: std::sync::Mutex::new((
                certified,
                [mtime(cert), mtime(key)],
                std::time::Instant::now(),
            )),
            provider,
        })
    }
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn read_certified(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert-file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert-file {}: no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key-file {}: {e}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    Ok(Arc::new(certified))
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut cur = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.2.elapsed() >= std::time::Duration::from_secs(10) {
            cur.2 = std::time::Instant::now();
            let times = [mtime(&self.cert), mtime(&self.key)];
            if times != cur.1 {
                match read_certified(&self.cert, &self.key, &self.provider) {
                    Ok(c) => {
                        tracing::info!("injector: serving certificate reloaded");
                        cur.0 = c;
                        cur.1 = times;
                    }
                    // Mid-rotation the pair may not match yet: keep the old one, retry later.
                    Err(e) => tracing::warn!("injector: certificate not reloaded: {e}"),
                }
            }
        }
        Some(cur.0.clone())
    }
}

/// Serves `router` over TLS (HTTP/1.1) on `listener` until the process ends.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "injector: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "injector: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "injector: TLS handshake timed out");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, error = %e, "injector: connection ended");
            }
        });
    }
}
