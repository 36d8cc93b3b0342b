//! The JSON Patch (RFC 6902) that injects the sidecar into one pod, as Dapr's injector builds
//! it (`dapr/dapr:pkg/injector/patcher/sidecar_patcher.go`, v1.14), minus what needs Dapr's
//! control plane: no `--control-plane-address`, `--sentry-address`, `--placement-host-address`,
//! `--enable-mtls`, trust anchors or Sentry token volume.
//!
//! Operation order, as Dapr's: `/spec/containers` and `/metadata/labels` created when absent,
//! the socket volume, the sidecar container, the three labels (`dapr.io/sidecar-injected`,
//! `dapr.io/app-id`, `dapr.io/metrics-enabled`), then per app container (in order) the
//! environment (`DAPR_HTTP_PORT`, `DAPR_GRPC_PORT`, `APP_PROTOCOL`, each only when the
//! container does not define it) and the socket mount.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::annotations::{ProbeTimes, SidecarConfig};

/// The name of the injected container; a pod that has a container of this name is left
/// unchanged (Dapr's test too, so neither injector injects twice).
pub const SIDECAR_CONTAINER: &str = "daprd";
/// daprd's fixed HTTP API port.
pub const HTTP_PORT: u16 = 3500;
/// daprd's fixed public (health) port.
pub const PUBLIC_PORT: u16 = 3501;
/// Where the sidecar's Unix sockets live inside its container.
pub const SOCKET_DIR: &str = "/var/run/dapr-sockets";
const SOCKET_VOLUME: &str = "dapr-unix-domain-socket";
/// The sidecar's writable `/tmp` (an in-memory `emptyDir`).
const TMP_VOLUME: &str = "layotto-tmp";

/// How the injector builds sidecars: what Dapr's injector reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectorConfig {
    /// The sidecar image, unless a pod names one (`dapr.io/sidecar-image`).
    pub sidecar_image: String,
    /// The program the container runs (default `/layotto`).
    pub sidecar_command: String,
    /// `imagePullPolicy` of the sidecar (default `IfNotPresent`).
    pub image_pull_policy: String,
    /// `securityContext.runAsUser` / `runAsGroup`, when set.
    pub run_as_user: Option<i64>,
    /// `securityContext.runAsGroup`, when set.
    pub run_as_group: Option<i64>,
    /// Drop every Linux capability (default true; Dapr's default is false).
    pub drop_all_capabilities: bool,
}

impl Default for InjectorConfig {
    fn default() -> Self {
        Self {
            sidecar_image: "layotto-rs:latest".to_owned(),
            sidecar_command: "/layotto".to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            run_as_user: None,
            run_as_group: None,
            drop_all_capabilities: true,
        }
    }
}

/// What to do with one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not annotated for a sidecar, or already has one: admit unchanged.
    Unchanged,
    /// Admit with these operations; `warnings` for the user (unknown annotations).
    Patch {
        /// JSON Patch operations (`{"op":"add","path":...,"value":...}`).
        ops: Vec<Value>,
        /// Messages for the user (unknown annotations).
        warnings: Vec<String>,
        /// What the pod's annotations asked for.
        sidecar: Box<SidecarConfig>,
    },
    /// The pod asks for a sidecar this injector cannot build; one line per problem.
    Refuse(Vec<String>),
}

fn op(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

/// JSON Pointer escaping of one path segment (`~` then `/`).
fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Decides what to do with `pod` (a `v1.Pod` as JSON: `metadata` and `spec`).
pub fn pod_patch(pod: &Value, cfg: &InjectorConfig) -> Decision {
    let meta = &pod["metadata"];
    let annotations: BTreeMap<String, String> = meta["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let enabled = annotations
        .get("dapr.io/enabled")
        .is_some_and(|v| crate::annotations::truthy(v));
    let containers = pod["spec"]["containers"].as_array();
    let has_sidecar = containers.is_some_and(|cs| {
        cs.iter()
            .any(|c| c["name"].as_str() == Some(SIDECAR_CONTAINER))
    });
    if !enabled || has_sidecar {
        return Decision::Unchanged;
    }
    let name = meta["name"].as_str().unwrap_or_default();
    let (sc, warnings) = match SidecarConfig::from_annotations(&annotations, name) {
        Ok(v) => v,
        Err(problems) => return Decision::Refuse(problems),
    };
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .map(|vs| vs.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<String> = sc
        .volume_mounts
        .iter()
        .chain(&sc.volume_mounts_rw)
        .filter(|(v, _)| !volumes.contains(&v.as_str()))
        .map(|(v, _)| format!("volume '{v}' named in dapr.io/volume-mounts is not in the pod"))
        .collect();
    if !missing.is_empty() {
        return Decision::Refuse(missing);
    }

    let mut ops = Vec::new();
    if containers.is_none() {
        ops.push(op("/spec/containers", json!([])));
    }
    if !meta["labels"].is_object() {
        ops.push(op("/metadata/labels", json!({})));
    }
    // The sidecar's /tmp (its root filesystem is read-only; Kubernetes mode keeps the resources
    // it read there), then the socket volume when asked for.
    let mut new_volumes = Vec::new();
    if !volumes.contains(&TMP_VOLUME) {
        new_volumes.push(
            json!({"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}),
        );
    }
    if sc.unix_domain_socket_path.is_some() && !volumes.contains(&SOCKET_VOLUME) {
        new_volumes.push(json!({"name": SOCKET_VOLUME, "emptyDir": {"medium": "Memory"}}));
    }
    if pod["spec"]["volumes"].is_array() {
        ops.extend(new_volumes.into_iter().map(|v| op("/spec/volumes/-", v)));
    } else if !new_volumes.is_empty() {
        ops.push(op("/spec/volumes", Value::Array(new_volumes)));
    }
    ops.push(op("/spec/containers/-", sidecar_container(&sc, cfg)));
    let app_id = sc.app_id.clone().unwrap_or_default();
    for (k, v) in [
        ("dapr.io/sidecar-injected", "true".to_owned()),
        ("dapr.io/app-id", app_id),
        ("dapr.io/metrics-enabled", sc.enable_metrics.to_string()),
    ] {
        ops.push(op(&format!("/metadata/labels/{}", escape(k)), json!(v)));
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        app_container_ops(i, c, &sc, &mut ops);
    }
    Decision::Patch {
        ops,
        warnings,
        sidecar: Box::new(sc),
    }
}

/// The environment and socket mount one app container gets.
fn app_container_ops(i: usize, c: &Value, sc: &SidecarConfig, ops: &mut Vec<Value>) {
    let defined: Vec<&str> = c["env"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let env: Vec<Value> = [
        ("DAPR_HTTP_PORT", HTTP_PORT.to_string()),
        ("DAPR_GRPC_PORT", sc.grpc_port.to_string()),
        ("APP_PROTOCOL", sc.app_protocol.clone()),
    ]
    .into_iter()
    .filter(|(k, _)| !defined.contains(k))
    .map(|(k, v)| json!({"name": k, "value": v}))
    .collect();
    if c["env"].is_array() {
        for e in env {
            ops.push(op(&format!("/spec/containers/{i}/env/-"), e));
        }
    } else if !env.is_empty() {
        ops.push(op(&format!("/spec/containers/{i}/env"), Value::Array(env)));
    }
    if let Some(path) = &sc.unix_domain_socket_path {
        let mounts = c["volumeMounts"].as_array();
        let taken = mounts.is_some_and(|ms| {
            ms.iter().any(|m| {
                m["name"].as_str() == Some(SOCKET_VOLUME) || m["mountPath"].as_str() == Some(path)
            })
        });
        let mount = json!({"name": SOCKET_VOLUME, "mountPath": path});
        match (taken, mounts.is_some()) {
            (true, _) => {}
            (false, true) => ops.push(op(&format!("/spec/containers/{i}/volumeMounts/-"), mount)),
            (false, false) => ops.push(op(
                &format!("/spec/containers/{i}/volumeMounts"),
                json!([mount]),
            )),
        }
    }
}

fn probe(t: ProbeTimes) -> Value {
    json!({
        "httpGet": {"path": "/v1.0/healthz", "port": PUBLIC_PORT},
        "initialDelaySeconds": t.initial_delay_seconds,
        "timeoutSeconds": t.timeout_seconds,
        "periodSeconds": t.period_seconds,
        "failureThreshold": t.failure_threshold,
    })
}

/// `k v` onto `a` when `v` is given.
fn flag(a: &mut Vec<String>, k: &str, v: Option<String>) {
    if let Some(v) = v {
        a.push(k.to_owned());
        a.push(v);
    }
}

/// The sidecar's command-line flags, daprd's names in daprd's injector's order.
pub fn sidecar_args(sc: &SidecarConfig) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let s = |v: &dyn ToString| Some(v.to_string());
    flag(&mut a, "--mode", s(&"kubernetes"));
    flag(&mut a, "--dapr-http-port", s(&HTTP_PORT));
    flag(&mut a, "--dapr-grpc-port", s(&sc.grpc_port));
    flag(
        &mut a,
        "--dapr-internal-grpc-port",
        s(&sc.internal_grpc_port),
    );
    flag(&mut a, "--dapr-listen-addresses", s(&sc.listen_addresses));
    flag(&mut a, "--dapr-public-port", s(&PUBLIC_PORT));
    flag(&mut a, "--app-id", sc.app_id.clone());
    flag(&mut a, "--app-protocol", s(&sc.app_protocol));
    flag(&mut a, "--log-level", s(&sc.log_level));
    flag(
        &mut a,
        "--dapr-graceful-shutdown-seconds",
        s(&sc.graceful_shutdown_seconds),
    );
    flag(&mut a, "--app-port", sc.app_port.map(|p| p.to_string()));
    if sc.enable_metrics {
        a.push("--enable-metrics".to_owned());
        flag(&mut a, "--metrics-port", s(&sc.metrics_port));
    } else {
        a.push("--enable-metrics=false".to_owned());
    }
    flag(&mut a, "--config", sc.config.clone());
    flag(
        &mut a,
        "--app-channel-address",
        sc.app_channel_address.clone(),
    );
    if let Some(b) = sc.enable_api_logging {
        a.push(format!("--enable-api-logging={b}"));
    }
    if sc.disable_builtin_k8s_secret_store {
        a.push("--disable-builtin-k8s-secret-store".to_owned());
    }
    if sc.enable_app_health_check {
        a.push("--enable-app-health-check".to_owned());
        flag(
            &mut a,
            "--app-health-check-path",
            s(&sc.app_health_check_path),
        );
        flag(
            &mut a,
            "--app-health-probe-interval",
            s(&sc.app_health_probe_interval),
        );
        flag(
            &mut a,
            "--app-health-probe-timeout",
            s(&sc.app_health_probe_timeout),
        );
        flag(
            &mut a,
            "--app-health-threshold",
            s(&sc.app_health_threshold),
        );
    }
    if sc.log_as_json {
        a.push("--log-as-json".to_owned());
    }
    let n = |v: Option<i64>| v.map(|v| v.to_string());
    flag(&mut a, "--app-max-concurrency", n(sc.app_max_concurrency));
    flag(
        &mut a,
        "--dapr-http-max-request-size",
        n(sc.http_max_request_size),
    );
    flag(&mut a, "--max-body-size", sc.max_body_size.clone());
    flag(
        &mut a,
        "--dapr-http-read-buffer-size",
        n(sc.http_read_buffer_size),
    );
    flag(&mut a, "--read-buffer-size", sc.read_buffer_size.clone());
    if sc.unix_domain_socket_path.is_some() {
        flag(&mut a, "--unix-domain-socket", s(&SOCKET_DIR));
    }
    flag(
        &mut a,
        "--dapr-block-shutdown-duration",
        sc.block_shutdown_duration.clone(),
    );
    a
}

/// The sidecar container.
fn sidecar_container(sc: &SidecarConfig, cfg: &InjectorConfig) -> Value {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let mut env = vec![
        json!({"name": "NAMESPACE", "valueFrom": field("metadata.namespace")}),
        json!({"name": "POD_NAME", "valueFrom": field("metadata.name")}),
    ];
    env.extend(sc.env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    if !sc.env.is_empty() {
        let keys: Vec<&str> = sc.env.iter().map(|(k, _)| k.as_str()).collect();
        env.push(json!({"name": "DAPR_ENV_KEYS", "value": keys.join(" ")}));
    }
    for (name, secret) in [
        ("DAPR_API_TOKEN", &sc.api_token_secret),
        ("APP_API_TOKEN", &sc.app_token_secret),
    ] {
        if let Some(s) = secret {
            env.push(json!({"name": name, "valueFrom":
                {"secretKeyRef": {"name": s, "key": "token"}}}));
        }
    }
    let mut ports = vec![
        json!({"name": "dapr-http", "containerPort": HTTP_PORT}),
        json!({"name": "dapr-grpc", "containerPort": sc.grpc_port}),
        json!({"name": "dapr-internal", "containerPort": sc.internal_grpc_port}),
    ];
    ports.push(json!({"name": "dapr-metrics", "containerPort": sc.metrics_port}));
    let mut mounts: Vec<Value> = sc
        .volume_mounts
        .iter()
        .map(|(n, p)| json!({"name": n, "mountPath": p, "readOnly": true}))
        .chain(
            sc.volume_mounts_rw
                .iter()
                .map(|(n, p)| json!({"name": n, "mountPath": p})),
        )
        .collect();
    if sc.unix_domain_socket_path.is_some() {
        mounts.push(json!({"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR}));
    }
    mounts.push(json!({"name": TMP_VOLUME, "mountPath": "/tmp"}));
    let mut security = json!({
        "allowPrivilegeEscalation": false,
        "runAsNonRoot": true,
        "readOnlyRootFilesystem": true,
        "seccompProfile": {"type": sc.seccomp_profile_type.as_deref().unwrap_or("RuntimeDefault")},
    });
    if cfg.drop_all_capabilities {
        security["capabilities"] = json!({"drop": ["ALL"]});
    }
    if let Some(u) = cfg.run_as_user {
        security["runAsUser"] = json!(u);
    }
    if let Some(g) = cfg.run_as_group {
        security["runAsGroup"] = json!(g);
    }
    let mut c = json!({
        "name": SIDECAR_CONTAINER,
        "image": sc.image.as_deref().unwrap_or(&cfg.sidecar_image),
        "imagePullPolicy": cfg.image_pull_policy,
        "command": [cfg.sidecar_command],
        "args": sidecar_args(sc),
        "env": env,
        "ports": ports,
        "readinessProbe": probe(sc.readiness),
        "livenessProbe": probe(sc.liveness),
        "securityContext": security,
    });
    let mut resources = serde_json::Map::new();
    for (kind, cpu, mem) in [
        ("requests", &sc.cpu_request, &sc.memory_request),
        ("limits", &sc.cpu_limit, &sc.memory_limit),
    ] {
        let mut m = serde_json::Map::new();
        if let Some(c) = cpu {
            m.insert("cpu".to_owned(), json!(c));
        }
        if let Some(v) = mem {
            m.insert("memory".to_owned(), json!(v));
        }
        if !m.is_empty() {
            resources.insert(kind.to_owned(), Value::Object(m));
        }
    }
    if !resources.is_empty() {
        c["resources"] = Value::Object(resources);
    }
    if !mounts.is_empty() {
        c["volumeMounts"] = Value::Array(mounts);
    }
    c
}

/// `pod` with `ops` applied (RFC 6902, the `json-patch` crate: what the API server does
/// with the webhook's answer).
///
/// # Errors
/// An operation that does not apply (a bug: the ops are built from this pod).
pub fn apply(pod: &Value, ops: &[Value]) -> Result<Value, String> {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec()))
        .map_err(|e| format!("sidecar patch is no JSON Patch: {e}"))?;
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch)
        .map_err(|e| format!("sidecar patch does not apply: {e}"))?;
    Ok(out)
}
