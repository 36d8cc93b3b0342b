//! The Helm chart `charts/layotto-rs`: `helm lint` and `helm template` pass (Helm v3 built
//! from the Go module proxy), and what it renders is accepted by a real Kubernetes API server,
//! where its Role gives a sidecar's service account exactly the reads Kubernetes mode needs,
//! in its own namespace only.

mod common;

use std::time::Duration;

use common::Api;
use layotto_test_support::{KubeApiServer, peers};
use serde_json::{Value, json};

/// The REST collection of a rendered object.
fn collection(doc: &Value) -> String {
    let api = doc["apiVersion"].as_str().unwrap();
    let ns = doc["metadata"]["namespace"].as_str();
    let plural = match doc["kind"].as_str().unwrap() {
        "CustomResourceDefinition" => "customresourcedefinitions",
        "MutatingWebhookConfiguration" => "mutatingwebhookconfigurations",
        "ServiceAccount" => "serviceaccounts",
        "Deployment" => "deployments",
        "Service" => "services",
        "Secret" => "secrets",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        other => panic!("the chart renders an unexpected kind {other}"),
    };
    let base = if api.contains('/') {
        format!("/apis/{api}")
    } else {
        format!("/api/{api}")
    };
    match ns {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_lints_renders_and_applies_with_least_privilege() {
    let chart = common::chart();
    peers::helm(&["lint".as_ref(), chart.as_os_str(), "--strict".as_ref()]);
    let docs = common::helm_template(&[
        "--namespace",
        "layotto-system",
        "--include-crds",
        "--set",
        "sidecarNamespaces={shop}",
    ]);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for k in [
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "Secret",
        "MutatingWebhookConfiguration",
        "Role",
        "RoleBinding",
    ] {
        assert!(kinds.contains(&k), "{k} not rendered: {kinds:?}");
    }
    let hook = docs
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    let w = &hook["webhooks"][0];
    assert!(!w["clientConfig"]["caBundle"].as_str().unwrap().is_empty());
    assert_eq!(w["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(w["rules"][0]["resources"], json!(["pods"]));
    assert_eq!(
        w["objectSelector"]["matchLabels"]["layotto-rs.io/inject"],
        "true"
    );

    let server = tokio::task::spawn_blocking(KubeApiServer::start)
        .await
        .unwrap();
    let api = Api::admin(&server);
    for ns in ["layotto-system", "shop", "other"] {
        api.created("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await;
        api.created(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            &json!({"metadata": {"name": "default"}}),
        )
        .await;
    }
    // CRDs first, then the rest once they are established.
    let (crds, rest): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .partition(|d| d["kind"] == "CustomResourceDefinition");
    for d in &crds {
        api.created(&collection(d), d).await;
    }
    for d in rest {
        api.created(&collection(d), d).await;
    }
    // A Component as Dapr's docs write it applies unchanged.
    let component = json!({
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "statestore"},
        "spec": {"type": "state.redis", "version": "v1", "metadata": [
            {"name": "redisHost", "value": "redis:6379"},
            {"name": "redisPassword", "secretKeyRef": {"name": "redis", "key": "password"}}
        ]},
        "scopes": ["orders"]
    });
    let path = "/apis/dapr.io/v1alpha1/namespaces/shop/components";
    for attempt in 0.. {
        let (status, v) = api.create(path, &component).await;
        if status == 201 {
            break;
        }
        assert!(
            attempt < 50,
            "the Component CRD never took it: {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A Component without spec.type is refused by the schema.
    let mut bad = component.clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"].as_object_mut().unwrap().remove("type");
    let (status, _) = api.create(path, &bad).await;
    assert_eq!(status, 422);

    // The sidecar's service account, with a token from the TokenRequest API.
    let (status, tr) = api
        .create(
            "/api/v1/namespaces/shop/serviceaccounts/default/token",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 600}}),
        )
        .await;
    assert_eq!(status, 201, "{tr}");
    let sidecar = api.with_token(tr["status"]["token"].as_str().unwrap());
    for (path, want) in [
        ("/apis/dapr.io/v1alpha1/namespaces/shop/components", 200),
        ("/apis/dapr.io/v1alpha1/namespaces/shop/configurations", 200),
        ("/apis/dapr.io/v1alpha1/namespaces/shop/resiliencies", 200),
        ("/apis/dapr.io/v2alpha1/namespaces/shop/subscriptions", 200),
        ("/apis/dapr.io/v1alpha1/namespaces/shop/httpendpoints", 200),
        (
            "/apis/dapr.io/v1alpha1/namespaces/shop/components?watch=1&timeoutSeconds=1",
            200,
        ),
        ("/api/v1/namespaces/shop/secrets/redis", 404),
        ("/api/v1/namespaces/shop/secrets", 403),
        ("/apis/dapr.io/v1alpha1/namespaces/other/components", 403),
        ("/api/v1/namespaces/shop/pods", 403),
    ] {
        let (status, v) = sidecar.get(path).await;
        assert_eq!(status, want, "GET {path}: {v}");
    }
}
