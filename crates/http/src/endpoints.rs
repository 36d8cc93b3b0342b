//! Channels to non-Dapr HTTP services: Dapr's `HTTPEndpoint` resources (invoked by name) and
//! URLs given as the app id (`/v1.0/invoke/http%3A%2F%2Fhost%3A3000/method/x`), as daprd's
//! `pkg/channel/http` reaches them.
//!
//! The request goes as the caller made it (verb, method path after the base URL and a `/`,
//! query, body, forwarded headers), with the endpoint's `headers` set over the caller's; the
//! answer comes back as it is. Unlike daprd, which builds these on its app channel, the app's
//! `APP_API_TOKEN` is not sent to them: it is the app's secret, not the service's.
//! `clientTLS.rootCA` replaces the system roots for that endpoint, as Go's `RootCAs` does;
//! `certificate` and `privateKey` make the client certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use layotto_config::HttpEndpoint;
use layotto_config::http_endpoint::EndpointValue;
use layotto_core::{Error, Result};
use layotto_runtime::{AppChannel, EndpointChannels, Metrics};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::app_channel::{CONNECT_TIMEOUT, HttpAppChannel, HttpAppChannelOptions};

/// URLs whose channels are kept; past this many the cache starts over.
const MAX_URL_CHANNELS: usize = 1024;

/// The `HTTPEndpoint` channels, and channels to URLs made as they are invoked.
pub struct HttpEndpointChannels {
    endpoints: HashMap<String, Arc<dyn AppChannel>>,
    /// One client for every URL (connections are pooled per host).
    client: reqwest::Client,
    urls: Mutex<HashMap<String, Arc<dyn AppChannel>>>,
    metrics: Option<Arc<Metrics>>,
}

impl HttpEndpointChannels {
    /// Channels for `endpoints` (their secrets already resolved), recording calls in `metrics`.
    ///
    /// # Errors
    /// `InvalidArgument` naming the endpoint: a value still a `secretKeyRef`, a header name or
    /// value HTTP refuses, a PEM document that does not parse.
    pub fn new(endpoints: &[HttpEndpoint], metrics: Option<Arc<Metrics>>) -> Result<Self> {
        let mut map: HashMap<String, Arc<dyn AppChannel>> = HashMap::new();
        for e in endpoints {
            let channel = endpoint_channel(e, metrics.clone())
                .map_err(|err| err.context(format!("HTTPEndpoint '{}'", e.name)))?;
            map.insert(e.name.clone(), Arc::new(channel));
        }
        Ok(Self {
            endpoints: map,
            client: client(None, None)?,
            urls: Mutex::default(),
            metrics,
        })
    }
}

impl EndpointChannels for HttpEndpointChannels {
    fn endpoint(&self, name: &str) -> Option<Arc<dyn AppChannel>> {
        self.endpoints.get(name).cloned()
    }

    fn url(&self, url: &str) -> Result<Arc<dyn AppChannel>> {
        reqwest::Url::parse(url).map_err(|e| Error::invalid(format!("URL '{url}': {e}")))?;
        let mut urls = self.urls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = urls.get(url) {
            return Ok(c.clone());
        }
        if urls.len() >= MAX_URL_CHANNELS {
            urls.clear();
        }
        let mut channel = HttpAppChannel::to_service(
            self.client.clone(),
            url.to_owned(),
            service_options(),
            HeaderMap::new(),
        );
        if let Some(m) = &self.metrics {
            channel = channel.with_metrics(m.clone());
        }
        let channel: Arc<dyn AppChannel> = Arc::new(channel);
        urls.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// The app channel's options without the app's token.
fn service_options() -> HttpAppChannelOptions {
    HttpAppChannelOptions {
        app_api_token: None,
        ..HttpAppChannelOptions::from_env()
    }
}

fn value(v: &EndpointValue, at: &str) -> Result<String> {
    match v {
        EndpointValue::Value(s) => Ok(s.clone()),
        EndpointValue::Secret { name, .. } => Err(Error::invalid(format!(
            "{at}: secret '{name}' was not resolved"
        ))),
    }
}

fn endpoint_channel(e: &HttpEndpoint, metrics: Option<Arc<Metrics>>) -> Result<HttpAppChannel> {
    let mut headers = HeaderMap::new();
    for (name, v) in &e.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|err| Error::invalid(format!("header name '{name}': {err}")))?;
        let v = HeaderValue::from_str(&value(v, name)?)
            .map_err(|err| Error::invalid(format!("header '{name}': {err}")))?;
        headers.append(n, v);
    }
    let root_ca = e
        .root_ca
        .as_ref()
        .map(|v| value(v, "clientTLS.rootCA"))
        .transpose()?;
    let identity = match (&e.certificate, &e.private_key) {
        (Some(c), Some(k)) => Some(format!(
            "{}\n{}",
            value(c, "clientTLS.certificate")?,
            value(k, "clientTLS.privateKey")?
        )),
        _ => None,
    };
    let client = client(root_ca.as_deref(), identity.as_deref())?;
    let channel =
        HttpAppChannel::to_service(client, e.base_url.clone(), service_options(), headers);
    Ok(match metrics {
        Some(m) => channel.with_metrics(m),
        None => channel,
    })
}

/// An HTTP/1.1 client trusting only `root_ca` when given (else the system's roots), presenting
/// `identity` (certificate and key, PEM) when given.
fn client(root_ca: Option<&str>, identity: Option<&str>) -> Result<reqwest::Client> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: a provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut b = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(pem) = root_ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| Error::invalid(format!("clientTLS.rootCA: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid("clientTLS.rootCA holds no PEM certificate"));
        }
        b = b.tls_certs_only(certs);
    }
    if let Some(pem) = identity {
        let id = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|e| Error::invalid(format!("clientTLS.certificate and privateKey: {e}")))?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| Error::internal(format!("cannot build HTTP client: {e}")))
}
