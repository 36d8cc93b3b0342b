//! Start-up, readiness, liveness and shutdown of the configured components.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use layotto_core::{Health, HealthStatus, Result};

use crate::{HealthReport, Runtime};

pub(crate) const READY_INIT: u8 = 0;
const READY_STARTED: u8 = 1;
const READY_FAILED: u8 = 2;

/// How long one component's health probe may take before it counts as DOWN.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A component's type as Dapr names it (`state.in-memory`), also for Layotto's section-relative
/// types (`in-memory` in `state`).
fn dapr_type(kind: layotto_core::Kind, type_: &str) -> String {
    let prefix = kind.info().dapr_prefix;
    if type_.starts_with(&format!("{prefix}.")) {
        type_.to_owned()
    } else {
        format!("{prefix}.{type_}")
    }
}

impl Runtime {
    /// Initialises every component (connects backends, loads files), in configuration order.
    ///
    /// # Errors
    /// The first component that fails, named; readiness then reports DOWN.
    pub async fn init(&self) -> Result<()> {
        for entry in self.components.snapshot().entries() {
            if let Err(e) = self.init_component(entry).await {
                self.fail_startup(&e.message);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Initialises one component, recording it in the init metrics.
    ///
    /// # Errors
    /// Its init error, naming it.
    pub(crate) async fn init_component(&self, entry: &crate::call::Entry) -> Result<()> {
        let c = &entry.registered;
        let type_ = dapr_type(c.kind, &c.type_);
        match entry.built.component.init().await {
            Ok(()) => {
                self.metrics.component_init(&type_, &c.name, None);
                Ok(())
            }
            Err(e) => {
                self.metrics.component_init(&type_, &c.name, Some("init"));
                Err(e.context(format!("initialising component {}/{}", c.kind, c.name)))
            }
        }
    }

    /// Closes every component (connections, background tasks), in reverse configuration
    /// order. Failures are logged; every component gets its `close`.
    pub async fn close(&self) {
        // A reload under way finishes first; none starts after this.
        let _reloads = self.reloading.lock().await;
        self.closed.store(true, Ordering::SeqCst);
        for entry in self.components.snapshot().entries().iter().rev() {
            close_component(entry).await;
        }
    }

    /// Marks start-up complete: readiness turns from INIT to the components' health.
    pub fn mark_started(&self) {
        self.ready.store(READY_STARTED, Ordering::SeqCst);
    }

    fn fail_startup(&self, reason: &str) {
        *crate::lock(&self.startup_error) = Some(reason.to_owned());
        self.ready.store(READY_FAILED, Ordering::SeqCst);
    }

    /// Liveness: UP while the process serves.
    pub fn liveness(&self) -> HealthReport {
        let mut components = BTreeMap::new();
        components.insert("runtime".to_owned(), Health::up());
        HealthReport {
            status: HealthStatus::Up,
            components,
        }
    }

    /// Readiness: INIT until start-up completes, then UP only if every component is UP.
    /// Each component is probed with a real round trip, concurrently.
    pub async fn readiness(&self) -> HealthReport {
        self.readiness_with(true).await
    }

    /// [`Runtime::readiness`], with the app's health (health checks) when `include_app`: Dapr's
    /// `/v1.0/healthz` is the sidecar's own health and leaves the app out, as daprd does.
    pub async fn readiness_with(&self, include_app: bool) -> HealthReport {
        let mut components = BTreeMap::new();
        let startup = match self.ready.load(Ordering::SeqCst) {
            READY_INIT => Health {
                status: HealthStatus::Init,
                details: BTreeMap::new(),
            },
            READY_FAILED => {
                Health::down(crate::lock(&self.startup_error).clone().unwrap_or_default())
            }
            _ => Health::up(),
        };
        let mut status = startup.status;
        components.insert("runtime_startup".to_owned(), startup);
        let table = self.components.snapshot();
        let probes = futures::future::join_all(table.entries().iter().map(|entry| {
            let label = format!("{}/{}", entry.built.kind, entry.registered.name);
            let component = entry.built.component.clone();
            async move {
                let h = tokio::time::timeout(PROBE_TIMEOUT, component.health())
                    .await
                    .unwrap_or_else(|_| Health::down("health check timed out after 3 s"));
                (label, h)
            }
        }))
        .await;
        let app = if include_app { self.app_health() } else { None };
        let probes = probes.into_iter().chain(app.map(|h| ("app".to_owned(), h)));
        for (label, h) in probes {
            if h.status != HealthStatus::Up && status == HealthStatus::Up {
                status = HealthStatus::Down;
            }
            components.insert(label, h);
        }
        HealthReport { status, components }
    }
}

/// Closes one component; a failure is logged.
pub(crate) async fn close_component(entry: &crate::call::Entry) {
    if let Err(e) = entry.built.component.close().await {
        let c = &entry.registered;
        tracing::warn!(component = %format!("{}/{}", c.kind, c.name), error = %e, "closing component failed");
    }
}
