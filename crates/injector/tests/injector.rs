//! The injector end to end without a cluster: the patch for annotated pods, manual injection
//! of a multi-document manifest, and the webhook over TLS answering AdmissionReviews with the
//! same patch `layotto inject` applies.

use std::sync::Arc;

use base64::Engine as _;
use layotto_injector::patch::apply;
use layotto_injector::{Decision, InjectorConfig, OnError, Webhook, inject_manifest, pod_patch};
use serde_json::{Value, json};

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orders-1", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [
            {"name": "app", "image": "orders:1", "env": [{"name": "DAPR_GRPC_PORT", "value": "1"}]},
            {"name": "helper", "image": "helper:1"}
        ]}
    })
}

fn injected(p: &Value) -> Value {
    match pod_patch(p, &InjectorConfig::default()) {
        Decision::Patch { ops, warnings, .. } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            apply(p, &ops).expect("patch applies")
        }
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn args(c: &Value) -> Vec<&str> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn value_after<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == flag).map(|i| args[i + 1])
}

#[test]
fn annotated_pods_get_the_sidecar_once_and_others_nothing() {
    let p = pod(json!({
        "dapr.io/enabled": "true",
        "dapr.io/app-id": "orders",
        "dapr.io/app-port": "8080",
        "dapr.io/app-protocol": "grpc",
        "dapr.io/config": "tracing",
        "dapr.io/log-level": "debug",
        "dapr.io/enable-metrics": "false",
        "dapr.io/sidecar-cpu-request": "100m",
        "dapr.io/sidecar-memory-limit": "256Mi",
        "dapr.io/sidecar-liveness-probe-period-seconds": "10",
        "dapr.io/env": "GOMEMLIMIT=200MiB,A=1,2",
        "dapr.io/app-token-secret": "app-token",
    }));
    let out = injected(&p);
    let cs = out["spec"]["containers"].as_array().unwrap();
    assert_eq!(cs.len(), 3);
    let sidecar = &cs[2];
    assert_eq!(sidecar["name"], "daprd");
    assert_eq!(sidecar["command"], json!(["/layotto"]));
    let a = args(sidecar);
    for (flag, v) in [
        ("--mode", "kubernetes"),
        ("--app-id", "orders"),
        ("--app-port", "8080"),
        ("--app-protocol", "grpc"),
        ("--config", "tracing"),
        ("--log-level", "debug"),
        ("--dapr-http-port", "3500"),
        ("--dapr-grpc-port", "50001"),
        ("--dapr-internal-grpc-port", "50002"),
        ("--dapr-public-port", "3501"),
    ] {
        assert_eq!(value_after(&a, flag), Some(v), "{flag} in {a:?}");
    }
    assert!(a.contains(&"--enable-metrics=false"), "{a:?}");
    for absent in [
        "--sentry-address",
        "--enable-mtls",
        "--control-plane-address",
    ] {
        assert!(!a.contains(&absent), "{absent} in {a:?}");
    }
    let ports: Vec<(&str, u64)> = sidecar["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dapr-http", 3500),
            ("dapr-grpc", 50001),
            ("dapr-internal", 50002),
            ("dapr-metrics", 9090)
        ]
    );
    assert_eq!(
        sidecar["resources"],
        json!({"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(sidecar["livenessProbe"]["periodSeconds"], 10);
    assert_eq!(
        sidecar["readinessProbe"]["httpGet"],
        json!({"path": "/v1.0/healthz", "port": 3501})
    );
    let sec = &sidecar["securityContext"];
    assert_eq!(sec["runAsNonRoot"], true);
    assert_eq!(sec["readOnlyRootFilesystem"], true);
    assert_eq!(sec["allowPrivilegeEscalation"], false);
    assert_eq!(sec["capabilities"]["drop"], json!(["ALL"]));
    let env = sidecar["env"].as_array().unwrap();
    assert!(
        env.contains(&json!({"name": "A", "value": "1,2"})),
        "{env:?}"
    );
    assert!(env.contains(&json!({"name": "DAPR_ENV_KEYS", "value": "GOMEMLIMIT A"})));
    assert!(env.contains(&json!({"name": "APP_API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "app-token", "key": "token"}}})));
    // The app's own DAPR_GRPC_PORT is kept; the rest is added to every app container.
    assert_eq!(
        cs[0]["env"],
        json!([
            {"name": "DAPR_GRPC_PORT", "value": "1"},
            {"name": "DAPR_HTTP_PORT", "value": "3500"},
            {"name": "APP_PROTOCOL", "value": "grpc"}
        ])
    );
    assert_eq!(cs[1]["env"].as_array().unwrap().len(), 3);
    assert_eq!(
        out["metadata"]["labels"],
        json!({"dapr.io/sidecar-injected": "true", "dapr.io/app-id": "orders", "dapr.io/metrics-enabled": "false"})
    );
    // Once injected, nothing more; without the annotation, nothing at all.
    assert_eq!(
        pod_patch(&out, &InjectorConfig::default()),
        Decision::Unchanged
    );
    assert_eq!(
        pod_patch(&pod(json!({})), &InjectorConfig::default()),
        Decision::Unchanged
    );
    assert_eq!(
        pod_patch(
            &pod(json!({"dapr.io/enabled": "false"})),
            &InjectorConfig::default()
        ),
        Decision::Unchanged
    );
    // The app id defaults to the pod's name; refused annotations are named.
    let out = injected(&pod(json!({"dapr.io/enabled": "true"})));
    assert_eq!(
        value_after(&args(&out["spec"]["containers"][2]), "--app-id"),
        Some("orders-1")
    );
    match pod_patch(
        &pod(json!({"dapr.io/enabled": "true", "dapr.io/placement-host-address": "x:1"})),
        &InjectorConfig::default(),
    ) {
        Decision::Refuse(p) => assert!(p[0].contains("dapr.io/placement-host-address"), "{p:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn volume_mounts_and_sockets() {
    let mut p = pod(json!({
        "dapr.io/enabled": "true",
        "dapr.io/volume-mounts": "certs:/certs",
        "dapr.io/unix-domain-socket-path": "/tmp/dapr",
    }));
    p["spec"]["volumes"] = json!([{"name": "certs", "secret": {"secretName": "c"}}]);
    let out = injected(&p);
    assert_eq!(
        out["spec"]["volumes"][2],
        json!({"name": "dapr-unix-domain-socket", "emptyDir": {"medium": "Memory"}})
    );
    assert_eq!(
        out["spec"]["volumes"][1],
        json!({"name": "layotto-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}})
    );
    let sidecar = &out["spec"]["containers"][2];
    assert_eq!(
        sidecar["volumeMounts"],
        json!([
            {"name": "certs", "mountPath": "/certs", "readOnly": true},
            {"name": "dapr-unix-domain-socket", "mountPath": "/var/run/dapr-sockets"},
            {"name": "layotto-tmp", "mountPath": "/tmp"}
        ])
    );
    assert_eq!(
        value_after(&args(sidecar), "--unix-domain-socket"),
        Some("/var/run/dapr-sockets")
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "dapr-unix-domain-socket", "mountPath": "/tmp/dapr"}])
    );
    p["spec"]["volumes"] = json!([]);
    match pod_patch(&p, &InjectorConfig::default()) {
        Decision::Refuse(e) => assert!(e[0].contains("'certs'"), "{e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
      annotations:
        dapr.io/enabled: "true"
        dapr.io/app-id: orders
    spec:
      containers:
      - name: app
        image: orders:1
---
apiVersion: v1
kind: Service
metadata:
  name: orders
spec:
  ports: [{port: 80}]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {dapr.io/enabled: "true", dapr.io/app-id: nightly}
        spec:
          restartPolicy: Never
          containers: [{name: job, image: job:1}]
"#;

#[test]
fn manual_injection_of_a_manifest() {
    let (out, warnings) = inject_manifest(MANIFEST, &InjectorConfig::default()).expect("injects");
    assert!(warnings.is_empty(), "{warnings:?}");
    let docs: Vec<Value> = out
        .split("---\n")
        .map(|d| serde_norway::from_str(d).expect("YAML out"))
        .collect();
    assert_eq!(docs.len(), 3);
    let names = |v: &Value| -> Vec<String> {
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&docs[0]["spec"]["template"]["spec"]),
        ["app", "daprd"]
    );
    assert_eq!(
        docs[0]["spec"]["template"]["metadata"]["labels"]["dapr.io/app-id"],
        "orders"
    );
    assert_eq!(
        docs[0]["spec"]["template"]["metadata"]["labels"]["app"],
        "orders"
    );
    assert_eq!(docs[1]["kind"], "Service");
    assert!(docs[1]["spec"].get("template").is_none());
    assert_eq!(
        names(&docs[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        ["job", "daprd"]
    );
    // With the Services: one per injected app, after the documents.
    let (with, _) =
        layotto_injector::inject_manifest_with(MANIFEST, &InjectorConfig::default(), true).unwrap();
    let docs: Vec<Value> = with
        .split("---\n")
        .map(|d| serde_norway::from_str(d).expect("YAML out"))
        .collect();
    let services: Vec<&str> = docs[3..]
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "Service");
            assert_eq!(d["spec"]["clusterIP"], "None");
            d["metadata"]["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(services, ["nightly-dapr", "orders-dapr"]);
    // Injecting the output again changes nothing.
    let (again, _) = inject_manifest(&out, &InjectorConfig::default()).unwrap();
    assert_eq!(again, out);
    // A template without an app id (its pods have no name yet) is refused by name.
    let bad = MANIFEST.replace("        dapr.io/app-id: orders\n", "");
    let e = inject_manifest(&bad, &InjectorConfig::default()).unwrap_err();
    assert!(
        e[0].starts_with("Deployment 'orders':") && e[0].contains("dapr.io/app-id"),
        "{e:?}"
    );
}

fn review(object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": object,
        }
    })
}

/// The server certificate and key of `certs` in files of a fresh temp dir (kept alive by the
/// first value).
fn cert_files(
    certs: &layotto_test_support::TestCerts,
) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, &certs.server_cert).unwrap();
    std::fs::write(&key, &certs.server_key).unwrap();
    (dir, crt, key)
}

/// The webhook (refusing what it cannot build, no Services) serving `crt`/`key` over TLS on a
/// free port of 127.0.0.1 in a task of this runtime; the port.
async fn serve_webhook(crt: &std::path::Path, key: &std::path::Path) -> u16 {
    let tls = layotto_injector::webhook::tls_config(crt, key).expect("server TLS");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let webhook = Webhook {
        injector: InjectorConfig::default(),
        on_error: OnError::Refuse,
        services: None,
    };
    tokio::spawn(layotto_injector::webhook::serve_tls(
        listener,
        tls,
        webhook.router(),
    ));
    port
}

#[tokio::test]
async fn the_webhook_answers_over_tls_with_the_manual_injection_patch() {
    let certs = layotto_test_support::TestCerts::generate();
    let (_dir, crt, key) = cert_files(&certs);
    let port = serve_webhook(&crt, &key).await;

    let client = reqwest::Client::builder()
        .use_preconfigured_tls(trusting(&certs.ca_cert))
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/mutate");
    let post = |body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("POST /mutate");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("JSON answer")
        }
    };

    let p = pod(json!({"dapr.io/enabled": "true", "dapr.io/app-id": "orders"}));
    let answer = post(review(&p)).await;
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    let resp = &answer["response"];
    assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(resp["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let stored = apply(&p, patch.as_array().unwrap()).unwrap();
    let manual = serde_norway::to_string(&p).unwrap();
    let (manual, _) = inject_manifest(&manual, &InjectorConfig::default()).unwrap();
    let manual: Value = serde_norway::from_str(&manual).unwrap();
    assert_eq!(
        stored, manual,
        "layotto inject equals what the webhook patches"
    );

    // Unannotated: admitted without a patch. Refused: denied with the reason.
    let answer = post(review(&pod(json!({})))).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    let bad = pod(json!({"dapr.io/enabled": "true", "dapr.io/enable-debug": "true"}));
    let answer = post(review(&bad)).await;
    assert_eq!(answer["response"]["allowed"], false);
    let msg = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.contains("dapr.io/enable-debug"), "{msg}");
    // Configured to admit instead: the same pod passes unchanged with a warning.
    let admit = Webhook {
        injector: InjectorConfig::default(),
        on_error: OnError::Admit,
        services: None,
    };
    let answer = admit.review(&review(&bad)).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("enable-debug")
    );
    // Not JSON: refused by content type.
    let r = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

/// A TLS client configuration trusting only the CA `ca_pem`.
fn trusting(ca_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The serving certificate the injector presents on a fresh TLS connection to `port`.
async fn served_cert(port: u16, ca_pem: &str) -> Vec<u8> {
    let config = trusting(ca_pem);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    use rustls::pki_types::pem::PemObject as _;
    let first = layotto_test_support::TestCerts::generate();
    let (_dir, crt, key) = cert_files(&first);
    let port = serve_webhook(&crt, &key).await;
    let der = |pem: &str| {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    assert_eq!(
        served_cert(port, &first.ca_cert).await,
        der(&first.server_cert)
    );
    // Rotated on disk (as a Secret volume is): the new pair is served after the next check.
    let second = layotto_test_support::TestCerts::generate();
    std::fs::write(&key, &second.server_key).unwrap();
    std::fs::write(&crt, &second.server_cert).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    assert_eq!(
        served_cert(port, &second.ca_cert).await,
        der(&second.server_cert)
    );
}
