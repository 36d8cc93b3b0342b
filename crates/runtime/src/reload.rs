//! Hot reloading (Dapr's `HotReload` feature): a new set of components and `Subscription`
//! resources applied to the running sidecar.
//!
//! Dapr closes an updated component and then initialises it again, so it is unavailable in
//! between (<https://docs.dapr.io/operations/components/component-updates/>). Here the new
//! component is built and initialised beside the old one, the table is swapped in one step,
//! and the old one is closed once the calls that resolved it have returned: no call sees a
//! missing or half-initialised component. A component whose new version fails to build or
//! initialise keeps serving in its old version (a new one is left out), and the failure is
//! logged naming it.

use std::sync::Arc;
use std::time::Duration;

use layotto_config::Config;
use layotto_core::{Kind, Registries};

use crate::call::Entry;
use crate::{Runtime, lock};

/// How long a replaced or removed component waits for the calls and subscriptions still using
/// it before it is closed anyway.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How long a component built by a reload may take to initialise (a reload holds back
/// shutdown while it runs).
pub const INIT_LIMIT: Duration = Duration::from_secs(30);

/// What a reload changed, by component (`<block>/<name>`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Components new in this configuration, now serving.
    pub added: Vec<String>,
    /// Components whose configuration changed, now serving in their new version.
    pub updated: Vec<String>,
    /// Components no longer configured, closed once their calls return.
    pub removed: Vec<String>,
    /// Components whose new configuration could not be built or initialised, with why: a
    /// changed one keeps serving in its old version, a new one is left out.
    pub failed: Vec<(String, String)>,
    /// Whether the `Subscription` resources changed.
    pub subscriptions_changed: bool,
}

impl ReloadOutcome {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
            && self.failed.is_empty()
            && !self.subscriptions_changed
    }
}

fn label(kind: Kind, name: &str) -> String {
    format!("{kind}/{name}")
}

impl Runtime {
    /// Applies the components and `Subscription` resources of `config` (its secret references
    /// resolved, as at start) to the running sidecar: new components are built and
    /// initialised, changed ones replaced, missing ones removed, all in one swap; calls in
    /// flight finish on the component they started on, which is closed after them (waiting
    /// at most [`DRAIN_LIMIT`]). When pub/sub components, bindings or subscriptions changed,
    /// the app's subscriptions and input bindings start again on the new table. Reloads run
    /// one at a time, each component's init limited to [`INIT_LIMIT`]; after
    /// [`Runtime::close`] a reload changes nothing. Every change and failure is logged naming
    /// the component.
    pub async fn reload(&self, config: &Config, registries: &Registries) -> ReloadOutcome {
        let _one = self.reloading.lock().await;
        let mut out = ReloadOutcome::default();
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return out;
        }
        let old = self.components.snapshot();
        let mut next: Vec<Arc<Entry>> = Vec::with_capacity(config.components.len());
        let mut retired: Vec<Arc<Entry>> = Vec::new();
        let mut resubscribe = false;
        for ce in &config.components {
            let name = &ce.spec.name;
            let prev = old.get(ce.kind, name);
            if let Some(p) = prev
                && p.built_from(ce)
            {
                next.push(p.clone());
                continue;
            }
            let at = label(ce.kind, name);
            let built = match crate::build::create(registries, ce, &self.app_id) {
                Ok((entry, warnings)) => {
                    for w in crate::build::at(ce, warnings) {
                        tracing::warn!("{w}");
                    }
                    let entry = self.components.prepare(entry);
                    let init = tokio::time::timeout(INIT_LIMIT, self.init_component(&entry));
                    match init.await.unwrap_or_else(|_| {
                        Err(layotto_core::Error::unavailable(format!(
                            "initialising component {at} did not finish within {} s",
                            INIT_LIMIT.as_secs()
                        )))
                    }) {
                        Ok(()) => Ok(entry),
                        Err(e) => {
                            // Whatever init opened before it failed.
                            crate::health::close_component(&entry).await;
                            Err(e.message)
                        }
                    }
                }
                Err(e) => Err(e.message),
            };
            match built {
                Ok(entry) => {
                    next.push(Arc::new(entry));
                    resubscribe |= matches!(ce.kind, Kind::PubSub | Kind::Binding);
                    match prev {
                        Some(p) => {
                            tracing::info!(component = %at, "component updated (hot reload)");
                            retired.push(p.clone());
                            out.updated.push(at);
                        }
                        None => {
                            tracing::info!(component = %at, "component added (hot reload)");
                            out.added.push(at);
                        }
                    }
                }
                Err(why) => {
                    match prev {
                        Some(p) => {
                            tracing::error!(component = %at, error = %why, "the component's new configuration failed; it keeps serving in its previous version");
                            next.push(p.clone());
                        }
                        None => {
                            tracing::error!(component = %at, error = %why, "the new component failed and is not loaded");
                        }
                    }
                    out.failed.push((at, why));
                }
            }
        }
        for e in old.entries() {
            let (kind, name) = (e.built.kind, &e.registered.name);
            let kept = next
                .iter()
                .any(|n| n.built.kind == kind && n.registered.name == *name);
            if !kept {
                let at = label(kind, name);
                tracing::info!(component = %at, "component removed (hot reload)");
                resubscribe |= matches!(kind, Kind::PubSub | Kind::Binding);
                retired.push(e.clone());
                out.removed.push(at);
            }
        }
        drop(old);
        self.components.replace(next);

        let mut problems = Vec::new();
        let declared = crate::subscriptions::declared(&config.subscriptions, &mut problems);
        for p in &problems {
            tracing::error!("subscription not reloaded: {p}");
        }
        {
            let mut current = lock(&self.declared);
            if *current != declared {
                *current = declared;
                out.subscriptions_changed = true;
                resubscribe = true;
                tracing::info!("subscriptions updated (hot reload)");
            }
        }
        if resubscribe {
            self.resubscribe.notify_one();
        }
        for entry in retired {
            tokio::spawn(close_when_idle(entry));
        }
        out
    }
}

/// Closes `entry` once nothing holds it (a call, from resolving its component to returning; a
/// subscription or input-binding reader, until it is dropped), or after [`DRAIN_LIMIT`].
async fn close_when_idle(entry: Arc<Entry>) {
    let started = tokio::time::Instant::now();
    while Arc::strong_count(&entry) > 1 && started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&entry) > 1 {
        let c = &entry.registered;
        tracing::warn!(component = %label(c.kind, &c.name), "calls still use the replaced component after 30 s; closing it anyway");
    }
    crate::health::close_component(&entry).await;
}
