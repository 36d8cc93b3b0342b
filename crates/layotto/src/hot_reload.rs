//! Dapr's `HotReload` feature: with it on in the Configuration (`spec.features: [{name:
//! HotReload, enabled: true}]`), Components and Subscriptions are read again when they change
//! and applied to the running sidecar (`layotto_runtime::Runtime::reload`), as daprd 1.14
//! does (<https://docs.dapr.io/operations/components/component-updates/>):
//!
//! - self-hosted: the files of the resources paths, looked at every second (a file added,
//!   removed, resized or touched);
//! - Kubernetes mode: a watch on the namespace's Components and Subscriptions (the chart's
//!   Role grants `watch`), reopened when the API server ends it.
//!
//! Either way the whole configuration is loaded again as at start. When a file has problems
//! (it does not parse, or is being written) nothing is applied, each problem logged naming
//! its resource; a component that parses but does not build or initialise is logged and
//! keeps serving in its previous version, while the other changes apply. The Configuration itself, Resiliencies and
//! HTTPEndpoints are read at start only, as in daprd.

use std::path::PathBuf;
use std::time::Duration;

use layotto_config::Config;
use layotto_core::Registries;
use tokio::sync::mpsc;

use crate::cli::DaprdArgs;

/// The name of Dapr's feature gate.
pub const FEATURE: &str = "HotReload";

/// How often the resources paths are looked at in self-hosted mode.
const POLL: Duration = Duration::from_secs(1);

/// How long a burst of changes (an editor's save, `kubectl apply` of several resources) is
/// waited out before the resources are read.
const SETTLE: Duration = Duration::from_millis(300);

/// A configuration read again, to apply: its components' secrets not yet resolved.
pub type Reloaded = (Config, Registries);

/// Starts watching for changes on `rt` when `features` turns hot reloading on: returns where
/// the configurations read again arrive. `kubernetes` picks the API server over the files;
/// `loaded` is what the files were before the running configuration was read from them (an
/// edit made since is applied).
pub fn spawn(
    rt: &tokio::runtime::Runtime,
    dapr: &DaprdArgs,
    daprd_mode: bool,
    kubernetes: bool,
    features: &[String],
    loaded: Fingerprint,
) -> Option<mpsc::Receiver<Reloaded>> {
    if !features.iter().any(|f| f == FEATURE) {
        return None;
    }
    let (tx, rx) = mpsc::channel(1);
    let dapr = dapr.clone();
    if kubernetes {
        #[cfg(feature = "kubernetes")]
        rt.spawn(watch_kubernetes(dapr, daprd_mode, tx));
        #[cfg(not(feature = "kubernetes"))]
        drop((dapr, tx));
    } else {
        tracing::info!("hot reload on: watching the resources paths");
        rt.spawn(poll_files(dapr, daprd_mode, loaded, tx));
    }
    Some(rx)
}

/// Loads the whole configuration again; `None` (each problem logged) when a file or flag has
/// problems (a file being written must not remove its components). Components that do not
/// build are the reload's to report, one by one.
fn load(dapr: &DaprdArgs, daprd_mode: bool) -> Option<Reloaded> {
    match crate::check(dapr, daprd_mode, crate::Checks::Structure) {
        Ok(c) => Some((c.config, c.registries)),
        Err(crate::Unchecked::Registry(e)) => {
            tracing::error!(error = %e, "hot reload: component registry");
            None
        }
        Err(crate::Unchecked::Problems(problems, _)) => {
            for p in &problems.0 {
                tracing::error!("hot reload: not applied: {p}");
            }
            None
        }
    }
}

/// What is known of the resource files: each file's path and a hash of its content
/// (symbolic links followed, as the loader does: a ConfigMap mounted as a volume is a
/// directory of links).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, u64)>);

impl Fingerprint {
    /// The files of `dirs` as they are now.
    pub fn of(dirs: &[PathBuf]) -> Self {
        use std::hash::{Hash as _, Hasher as _};
        let mut out = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if !path.is_file() {
                    continue;
                }
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&path).ok().hash(&mut h);
                out.push((path, h.finish()));
            }
        }
        out.sort();
        Self(out)
    }
}

async fn poll_files(
    dapr: DaprdArgs,
    daprd_mode: bool,
    mut seen: Fingerprint,
    tx: mpsc::Sender<Reloaded>,
) {
    let dirs = dapr.resources();
    loop {
        tokio::time::sleep(POLL).await;
        if Fingerprint::of(&dirs) == seen {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        seen = Fingerprint::of(&dirs);
        tracing::info!("resource files changed; reading them again");
        if let Some(r) = load(&dapr, daprd_mode)
            && tx.send(r).await.is_err()
        {
            return;
        }
    }
}

#[cfg(feature = "kubernetes")]
async fn watch_kubernetes(dapr: DaprdArgs, daprd_mode: bool, tx: mpsc::Sender<Reloaded>) {
    use tokio_stream::StreamExt as _;
    let (client, ns) = match layotto_components_kubernetes::client(None).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e.message, "hot reload off: no Kubernetes client");
            return;
        }
    };
    tracing::info!(namespace = %ns, "hot reload on: watching Components and Subscriptions");
    let mut failures = 0u32;
    loop {
        let opened = tokio::time::Instant::now();
        let mut changes = match layotto_components_kubernetes::resources::watch(&client, &ns).await
        {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                let delay = layotto_core::pubsub::retry_delay(failures);
                tracing::warn!(error = %e.message, ?delay, "hot reload: cannot watch the resources; trying again");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        failures = 0;
        // What changed before the watch opened is not in it: read everything now (applying
        // what did not change changes nothing).
        loop {
            {
                let reloaded = match crate::kube::fetch_resources(&dapr).await {
                    Ok((args, _dir)) => load(&args, daprd_mode),
                    Err(e) => {
                        tracing::error!(error = %e, "hot reload: not applied");
                        None
                    }
                };
                if let Some(r) = reloaded
                    && tx.send(r).await.is_err()
                {
                    return;
                }
            }
            if changes.next().await.is_none() {
                break;
            }
            tokio::time::sleep(SETTLE).await;
            // The changes that came meanwhile are in the one read that follows.
            while let Ok(Some(())) = tokio::time::timeout(Duration::ZERO, changes.next()).await {}
        }
        // A watch the API server ends at once is not reopened in a tight loop.
        tokio::time::sleep_until(opened + Duration::from_secs(1)).await;
    }
}
