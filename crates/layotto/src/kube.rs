//! `layotto inject` (manual sidecar injection of manifests) and `layotto injector` (the
//! mutating admission webhook); the work is in `layotto_injector`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use layotto_injector::{InjectorConfig, OnError, Webhook};

use crate::EXIT_CONFIG;

/// How sidecars are built: the flags both subcommands share (Dapr's injector reads these from
/// its environment; the environment variables named work here too).
#[derive(Args, Debug, Clone)]
pub struct SidecarFlags {
    /// The sidecar image (pods may override it with `dapr.io/sidecar-image`).
    #[arg(long, env = "SIDECAR_IMAGE", default_value = "layotto-rs:latest")]
    sidecar_image: String,
    /// The program the sidecar container runs.
    #[arg(long, default_value = "/layotto")]
    sidecar_command: String,
    /// `imagePullPolicy` of the sidecar: Always, Never or IfNotPresent.
    #[arg(
        long,
        env = "SIDECAR_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    sidecar_image_pull_policy: String,
    /// `securityContext.runAsUser` of the sidecar.
    #[arg(long, env = "SIDECAR_RUN_AS_USER")]
    sidecar_run_as_user: Option<i64>,
    /// `securityContext.runAsGroup` of the sidecar.
    #[arg(long, env = "SIDECAR_RUN_AS_GROUP")]
    sidecar_run_as_group: Option<i64>,
    /// Keep the Linux capabilities the runtime grants (they are dropped by default).
    #[arg(long)]
    keep_capabilities: bool,
}

impl SidecarFlags {
    fn config(&self) -> Result<InjectorConfig, String> {
        if !matches!(
            self.sidecar_image_pull_policy.as_str(),
            "Always" | "Never" | "IfNotPresent"
        ) {
            return Err(format!(
                "--sidecar-image-pull-policy: '{}' is not Always, Never or IfNotPresent",
                self.sidecar_image_pull_policy
            ));
        }
        Ok(InjectorConfig {
            sidecar_image: self.sidecar_image.clone(),
            sidecar_command: self.sidecar_command.clone(),
            image_pull_policy: self.sidecar_image_pull_policy.clone(),
            run_as_user: self.sidecar_run_as_user,
            run_as_group: self.sidecar_run_as_group,
            drop_all_capabilities: !self.keep_capabilities,
        })
    }
}

/// `layotto inject -f FILE`: prints FILE (`-` for standard input) with the sidecar injected
/// into every pod template annotated for it, then (with `services`) each injected app's
/// `<app-id>-dapr` Service. Problems go to stderr and exit 64; warnings go
/// to stderr.
pub fn inject(file: &Path, services: bool, flags: &SidecarFlags) -> ExitCode {
    let cfg = match flags.config() {
        Ok(c) => c,
        Err(e) => return fail(&[e]),
    };
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(&[format!("{}: {e}", file.display())]),
    };
    match layotto_injector::inject_manifest_with(&text, &cfg, services) {
        Ok((out, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(problems) => fail(&problems),
    }
}

fn fail(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("error: {p}");
    }
    ExitCode::from(EXIT_CONFIG)
}

/// `layotto injector`: serves the admission webhook over TLS until stopped.
pub fn injector(
    port: u16,
    cert: &Path,
    key: &Path,
    on_error: &str,
    create_services: bool,
    flags: &SidecarFlags,
) -> ExitCode {
    let on_error = match on_error {
        "refuse" => OnError::Refuse,
        "admit" => OnError::Admit,
        other => return fail(&[format!("--on-error: '{other}' is not refuse or admit")]),
    };
    let cfg = match flags.config() {
        Ok(c) => c,
        Err(e) => return fail(&[e]),
    };
    let tls = match layotto_injector::webhook::tls_config(cert, key) {
        Ok(t) => t,
        Err(e) => return fail(&[e]),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: listen on port {port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let services = if create_services {
            match layotto_injector::service::default_client().await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!(
                        "error: no Kubernetes API server to apply the <app-id>-dapr Services to \
                         ({e}); --create-services=false leaves them out"
                    );
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        tracing::info!(port, "sidecar injector listening (TLS)");
        let router = Webhook {
            injector: cfg,
            on_error,
            services,
        }
        .router();
        tokio::select! {
            () = layotto_injector::webhook::serve_tls(listener, tls, router) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        ExitCode::SUCCESS
    })
}

/// `--mode kubernetes`: reads the namespace's `dapr.io` resources from the API server (see
/// `layotto_components_kubernetes::resources`) into a private temp dir and returns the flags
/// that load them as a resources path, with the Configuration named by `--config` as a file.
/// The namespace is `$NAMESPACE` (the injector sets it), else the kubeconfig's.
///
/// Components whose `secretKeyRef`s name no secret store read them from the built-in
/// `kubernetes` store, as in Dapr's Kubernetes mode; that store is added unless
/// `--disable-builtin-k8s-secret-store` or a component of that name exists.
///
/// # Errors
/// A message naming what could not be read.
#[cfg(feature = "kubernetes")]
pub fn kubernetes_resources(
    dapr: &crate::cli::DaprdArgs,
) -> Result<(crate::cli::DaprdArgs, tempfile::TempDir), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start a runtime: {e}"))?;
    rt.block_on(fetch_resources(dapr))
}

/// [`kubernetes_resources`], on the caller's runtime (a hot reload reads them again).
///
/// # Errors
/// As [`kubernetes_resources`].
#[cfg(feature = "kubernetes")]
pub async fn fetch_resources(
    dapr: &crate::cli::DaprdArgs,
) -> Result<(crate::cli::DaprdArgs, tempfile::TempDir), String> {
    use serde_json::{Value, json};
    let config_name = match dapr.config.as_slice() {
        [] => None,
        [one] => Some(one.to_string_lossy().into_owned()),
        _ => return Err("--config: Kubernetes mode takes one Configuration name".to_owned()),
    };
    let (docs, configuration, namespace) = async {
        let (client, ns) = layotto_components_kubernetes::client(None).await?;
        let (docs, config) =
            layotto_components_kubernetes::resources::fetch(&client, &ns, config_name.as_deref())
                .await?;
        Ok::<_, layotto_core::Error>((docs, config, ns))
    }
    .await
    .map_err(|e| format!("Kubernetes mode: {}", e.message))?;
    let dir = tempfile::Builder::new()
        .prefix("layotto-kubernetes-")
        .tempdir()
        .map_err(|e| format!("Kubernetes mode: create a temp dir: {e}"))?;
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).map_err(|e| format!("Kubernetes mode: {e}"))?;
    let mut docs = docs;
    let own_store = docs
        .iter()
        .any(|d| d["kind"] == "Component" && d["metadata"]["name"] == "kubernetes");
    let builtin = !dapr.disable_builtin_k8s_secret_store && !own_store;
    // Without a store of that name the refs stay unresolved, and the loader says so.
    if builtin || own_store {
        for d in &mut docs {
            let refs_secret = d["spec"]["metadata"]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i.get("secretKeyRef").is_some()));
            if d["kind"] == "Component" && refs_secret && d["auth"]["secretStore"].is_null() {
                d["auth"] = json!({"secretStore": "kubernetes"});
            }
        }
    }
    if builtin {
        docs.push(json!({
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "kubernetes", "namespace": namespace},
            "spec": {"type": "secretstores.kubernetes", "version": "v1", "metadata": []},
        }));
    }
    let write = |path: &std::path::Path, doc: &Value| {
        let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
    };
    for (i, d) in docs.iter().enumerate() {
        let name = d["metadata"]["name"].as_str().unwrap_or("unnamed");
        let kind = d["kind"]
            .as_str()
            .unwrap_or("resource")
            .to_ascii_lowercase();
        write(&resources.join(format!("{i:04}-{kind}-{name}.yaml")), d)?;
    }
    let mut args = dapr.clone();
    args.resources_path = vec![resources];
    args.components_path = None;
    args.config = Vec::new();
    if let Some(c) = configuration {
        let path = dir.path().join("configuration.yaml");
        write(&path, &c)?;
        args.config = vec![path];
    }
    Ok((args, dir))
}
