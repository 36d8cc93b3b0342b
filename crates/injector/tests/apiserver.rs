//! The injector registered in a real Kubernetes API server (`kube-apiserver` v1.34.4 on etcd,
//! RBAC on; no kubelet, so Pods are stored, not run): the webhook is called by URL, as a
//! Service cannot be reached without cluster DNS.

mod common;

use std::time::Duration;

use common::Api;
use layotto_injector::{InjectorConfig, OnError, Webhook, inject_manifest};
use layotto_test_support::KubeApiServer;
use serde_json::{Value, json};

fn webhook_config(port: u16, ca_pem: &str, failure_policy: &str) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "layotto-rs-sidecar-injector"},
        "webhooks": [{
            "name": "sidecar-injector.layotto-rs.io",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/mutate"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                       "operations": ["CREATE"]}],
            "failurePolicy": failure_policy,
            "sideEffects": "NoneOnDryRun",
            "admissionReviewVersions": ["v1"],
            "reinvocationPolicy": "IfNeeded",
            "timeoutSeconds": 5,
        }]
    })
}

/// The chart's injector RBAC (ClusterRole, ClusterRoleBinding) as Helm renders it for a
/// release in `namespace`.
fn chart_injector_rbac(namespace: &str) -> Vec<Value> {
    common::helm_template(&[
        "--namespace",
        namespace,
        "--show-only",
        "templates/injector-rbac.yaml",
    ])
}

/// A client acting as the chart's injector service account.
async fn injector_client(server: &KubeApiServer, api: &Api) -> kube::Client {
    for ns in ["layotto-system"] {
        api.created("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await;
    }
    api.created(
        "/api/v1/namespaces/layotto-system/serviceaccounts",
        &json!({"metadata": {"name": "layotto-rs-sidecar-injector"}}),
    )
    .await;
    for d in chart_injector_rbac("layotto-system") {
        let plural = if d["kind"] == "ClusterRole" {
            "clusterroles"
        } else {
            "clusterrolebindings"
        };
        api.created(&format!("/apis/rbac.authorization.k8s.io/v1/{plural}"), &d)
            .await;
    }
    let tr = api
        .created(
            "/api/v1/namespaces/layotto-system/serviceaccounts/layotto-rs-sidecar-injector/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
        )
        .await;
    let kubeconfig = server.kubeconfig(tr["status"]["token"].as_str().unwrap(), "default");
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn pod(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "orders:1"}]}
    })
}

/// The parts of a stored pod the injection decides, without what the API server adds per pod
/// (the service-account token volume, whose name has a random suffix).
fn injected_parts(p: &Value) -> Value {
    let mut spec = p["spec"].clone();
    let not_token = |v: &Value| {
        !v["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    };
    if let Some(vs) = spec["volumes"].as_array_mut() {
        vs.retain(not_token);
    }
    for c in spec["containers"].as_array_mut().unwrap() {
        if let Some(ms) = c["volumeMounts"].as_array_mut() {
            ms.retain(not_token);
        }
    }
    json!({"labels": p["metadata"]["labels"], "containers": spec["containers"], "volumes": spec["volumes"]})
}

fn container_names(p: &Value) -> Vec<String> {
    p["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_created_in_a_real_api_server_get_the_sidecar() {
    let server = tokio::task::spawn_blocking(KubeApiServer::start)
        .await
        .unwrap();
    let api = Api::admin(&server);

    // The webhook, serving the API server's test certificate (it names 127.0.0.1).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &server.certs().server_cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &server.certs().server_key).unwrap();
    let tls = layotto_injector::webhook::tls_config(
        &dir.path().join("tls.crt"),
        &dir.path().join("tls.key"),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let webhook = Webhook {
        injector: InjectorConfig::default(),
        on_error: OnError::Refuse,
        services: Some(injector_client(&server, &api).await),
    };
    // A runtime of its own, so shutting it down also ends the connections the API server
    // keeps open to the webhook.
    let webhook_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    webhook_rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        layotto_injector::webhook::serve_tls(listener, tls, webhook.router()).await;
    });

    api.created("/api/v1/namespaces", &json!({"metadata": {"name": "shop"}}))
        .await;
    api.created(
        "/api/v1/namespaces/shop/serviceaccounts",
        &json!({"metadata": {"name": "default"}}),
    )
    .await;
    api.created(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        &webhook_config(port, server.ca_cert(), "Fail"),
    )
    .await;
    let pods = "/api/v1/namespaces/shop/pods";
    let annotated = json!({"dapr.io/enabled": "true", "dapr.io/app-id": "orders",
                           "dapr.io/app-port": "8080"});

    // The API server may take a moment to see the new webhook configuration.
    let mut stored = Value::Null;
    for attempt in 0.. {
        let p = api
            .created(pods, &pod(&format!("orders-{attempt}"), annotated.clone()))
            .await;
        if container_names(&p).len() == 2 {
            stored = p;
            break;
        }
        assert!(attempt < 50, "the webhook was never called: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(container_names(&stored), ["app", "daprd"]);
    assert_eq!(stored["metadata"]["labels"]["dapr.io/app-id"], "orders");
    assert!(
        stored["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "DAPR_HTTP_PORT", "value": "3500"}))
    );

    // `layotto inject` output, created in the same server (the webhook leaves it alone: it
    // has its sidecar), is stored exactly as the webhook's patch was.
    let manifest = serde_norway::to_string(&pod("manual", annotated.clone())).unwrap();
    let (manual, _) = inject_manifest(&manifest, &InjectorConfig::default()).unwrap();
    let manual: Value = serde_norway::from_str(&manual).unwrap();
    let manual_stored = api.created(pods, &manual).await;
    assert_eq!(
        container_names(&manual_stored),
        ["app", "daprd"],
        "injected once"
    );
    assert_eq!(injected_parts(&manual_stored), injected_parts(&stored));
    // The same for a set of pods asking for more.
    let variants = [
        json!({"dapr.io/enabled": "true", "dapr.io/app-id": "pay", "dapr.io/app-port": "9000",
               "dapr.io/app-protocol": "grpc", "dapr.io/enable-metrics": "false",
               "dapr.io/sidecar-cpu-request": "50m", "dapr.io/sidecar-memory-limit": "128Mi",
               "dapr.io/env": "A=1,B=2", "dapr.io/log-level": "debug",
               "dapr.io/sidecar-readiness-probe-period-seconds": "2",
               "dapr.io/app-token-secret": "app-token"}),
        json!({"dapr.io/enabled": "true", "dapr.io/app-id": "vol",
               "dapr.io/volume-mounts": "data:/data", "dapr.io/unix-domain-socket-path": "/tmp/s",
               "dapr.io/enable-app-health-check": "true", "dapr.io/config": "tracing"}),
    ];
    for (i, annotations) in variants.into_iter().enumerate() {
        let mut p = pod(&format!("variant-{i}"), annotations);
        p["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        let by_webhook = api.created(pods, &p).await;
        assert_eq!(
            container_names(&by_webhook),
            ["app", "daprd"],
            "{by_webhook}"
        );
        p["metadata"]["name"] = json!(format!("variant-{i}-manual"));
        let (manual, _) = inject_manifest(
            &serde_norway::to_string(&p).unwrap(),
            &InjectorConfig::default(),
        )
        .unwrap();
        let by_hand = api
            .created(pods, &serde_norway::from_str::<Value>(&manual).unwrap())
            .await;
        assert_eq!(
            injected_parts(&by_hand),
            injected_parts(&by_webhook),
            "variant {i}"
        );
    }

    // The app's headless Service, as Dapr's operator keeps it, applied by the injector with
    // the chart's rights.
    let mut svc = Value::Null;
    for attempt in 0.. {
        let (status, v) = api
            .get("/api/v1/namespaces/shop/services/orders-dapr")
            .await;
        if status == 200 {
            svc = v;
            break;
        }
        assert!(attempt < 50, "no orders-dapr Service: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(svc["spec"]["selector"], json!({"dapr.io/app-id": "orders"}));
    let ports: Vec<(String, u64, u64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
                p["targetPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dapr-http".to_owned(), 80, 3500),
            ("dapr-grpc".to_owned(), 50001, 50001),
            ("dapr-internal".to_owned(), 50002, 50002),
            ("dapr-metrics".to_owned(), 9090, 9090)
        ]
    );
    assert_eq!(svc["metadata"]["annotations"]["prometheus.io/port"], "9090");

    // A Service of an app's name that is not a Dapr app's is never taken over.
    api.created(
        "/api/v1/namespaces/shop/services",
        &json!({"metadata": {"name": "taken-dapr"},
                "spec": {"selector": {"app": "mine"}, "ports": [{"port": 1234}]}}),
    )
    .await;
    api.created(
        pods,
        &pod(
            "taken-1",
            json!({"dapr.io/enabled": "true", "dapr.io/app-id": "taken"}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, taken) = api.get("/api/v1/namespaces/shop/services/taken-dapr").await;
    assert_eq!(taken["spec"]["selector"], json!({"app": "mine"}), "{taken}");

    // Not annotated: untouched.
    let plain = api.created(pods, &pod("plain", json!({}))).await;
    assert_eq!(container_names(&plain), ["app"]);
    assert!(plain["metadata"]["labels"].is_null());

    // A refused annotation: the API server refuses the pod with the webhook's reason.
    let (status, v) = api
        .create(
            pods,
            &pod(
                "debug",
                json!({"dapr.io/enabled": "true", "dapr.io/enable-debug": "true"}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("dapr.io/enable-debug"),
        "{v}"
    );

    // The webhook down: failurePolicy Fail refuses annotated pods, Ignore admits them as
    // they are.
    webhook_rt.shutdown_background();
    let (status, v) = api
        .create(pods, &pod("while-down", annotated.clone()))
        .await;
    assert!(
        status >= 500 || status == 400 || status == 403,
        "{status} {v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("sidecar-injector.layotto-rs.io"),
        "{v}"
    );
    let path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/layotto-rs-sidecar-injector";
    let (status, v) = api.send(reqwest::Method::DELETE, path, None).await;
    assert_eq!(status, 200, "{v}");
    api.created(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        &webhook_config(port, server.ca_cert(), "Ignore"),
    )
    .await;
    let mut admitted = Value::Null;
    for attempt in 0.. {
        let (status, v) = api
            .create(pods, &pod(&format!("ignored-{attempt}"), annotated.clone()))
            .await;
        if status == 201 {
            admitted = v;
            break;
        }
        assert!(attempt < 50, "Ignore never took effect: {status} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(container_names(&admitted), ["app"]);
}
