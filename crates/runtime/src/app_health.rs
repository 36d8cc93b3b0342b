//! App health checks, as daprd's `--enable-app-health-check`: the app is probed every
//! `interval` ([`crate::AppChannel::health`]: `GET <path>` for HTTP apps, `HealthCheck` for gRPC
//! apps), each probe bounded by `timeout`; after `threshold` failures in a row the app is
//! unhealthy: its subscriptions are dropped (so the other members of its consumer groups take
//! its messages; nothing unprocessed is acknowledged) and readiness reports `app` DOWN. The
//! first successful probe makes it healthy again and its subscriptions resume.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use layotto_core::Health;

use crate::{AppChannel, Runtime};

/// daprd's app health settings.
#[derive(Debug, Clone)]
pub struct AppHealthSettings {
    /// `--app-health-check-path` (HTTP apps; default `/healthz`).
    pub path: String,
    /// `--app-health-probe-interval` (default 5 s).
    pub interval: Duration,
    /// `--app-health-probe-timeout` (default 500 ms).
    pub timeout: Duration,
    /// `--app-health-threshold`: failures in a row before the app is unhealthy (default 3).
    pub threshold: u32,
}

impl Runtime {
    /// Turns app health checks on before they run: until the first good probe the app counts
    /// as unhealthy (no deliveries, readiness `app` DOWN, a blocked shutdown ends at once), as
    /// daprd's. Call before [`Runtime::start_app_subscriptions`].
    pub fn expect_app_health(&self) {
        self.app_health_enabled.store(true, Ordering::SeqCst);
        *crate::lock(&self.app_unhealthy_reason) = "no health probe has answered yet".to_owned();
        self.app_healthy.send_replace(false);
    }

    /// Probes the app through `channel` until [`Runtime::stop_app_subscriptions`]; see the
    /// module documentation.
    pub async fn run_app_health(
        self: &Arc<Self>,
        channel: Arc<dyn AppChannel>,
        s: AppHealthSettings,
    ) {
        self.app_health_enabled.store(true, Ordering::SeqCst);
        let mut failures = 0u32;
        let mut first = true;
        loop {
            // The first probe runs at once; then one per interval.
            if !std::mem::take(&mut first) {
                tokio::time::sleep(s.interval).await;
            }
            if self.app_stopped.load(Ordering::SeqCst) {
                return;
            }
            let probe = tokio::time::timeout(s.timeout, channel.health(&s.path)).await;
            let healthy = *self.app_healthy.borrow();
            match probe {
                Ok(Ok(())) => {
                    failures = 0;
                    if !healthy {
                        tracing::info!("app is healthy: its subscriptions run");
                        self.app_healthy.send_replace(true);
                    }
                }
                Ok(Err(e)) => failures = self.probe_failed(failures, &s, healthy, &e.to_string()),
                Err(_) => {
                    let why = format!("no answer within {:?}", s.timeout);
                    failures = self.probe_failed(failures, &s, healthy, &why);
                }
            }
        }
    }

    fn probe_failed(&self, failures: u32, s: &AppHealthSettings, healthy: bool, why: &str) -> u32 {
        let failures = failures.saturating_add(1);
        if healthy && failures >= s.threshold {
            tracing::warn!(
                failures,
                reason = why,
                "app is unhealthy: pausing its subscriptions"
            );
            *crate::lock(&self.app_unhealthy_reason) = why.to_owned();
            self.app_healthy.send_replace(false);
        }
        failures
    }

    /// Completes when the app is reported unhealthy (never, without health checks): what
    /// ends `--dapr-block-shutdown-duration` early.
    pub async fn app_unhealthy(&self) {
        let mut rx = self.app_healthy.subscribe();
        if rx.wait_for(|healthy| !healthy).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The app's health for readiness, when health checks run.
    pub(crate) fn app_health(&self) -> Option<Health> {
        if !self.app_health_enabled.load(Ordering::SeqCst) {
            return None;
        }
        Some(if *self.app_healthy.borrow() {
            Health::up()
        } else {
            Health::down(crate::lock(&self.app_unhealthy_reason).clone())
        })
    }
}
