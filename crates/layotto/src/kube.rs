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
/// into every pod template annotated for it. Problems go to stderr and exit 64; warnings go
/// to stderr.
pub fn inject(file: &Path, flags: &SidecarFlags) -> ExitCode {
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
    match layotto_injector::inject_manifest(&text, &cfg) {
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
        tracing::info!(port, "sidecar injector listening (TLS)");
        let router = Webhook {
            injector: cfg,
            on_error,
        }
        .router();
        tokio::select! {
            () = layotto_injector::webhook::serve_tls(listener, tls, router) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        ExitCode::SUCCESS
    })
}
