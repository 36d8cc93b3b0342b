//! `--mode kubernetes` against a real kube-apiserver (v1.34.4 on etcd, RBAC on) with Dapr's
//! CRDs and the Role of `charts/layotto-rs`: the sidecar runs as a local process with a
//! kubeconfig holding a token of its namespace's `default` service account, loads the
//! namespace's Components (a state store, a pub/sub, an output binding whose url is a
//! `secretKeyRef`; `scopes` honoured) and the Configuration named by `--config`, and serves
//! Secrets through the built-in `kubernetes` secret store. A Component of an unknown type and
//! a namespace without the chart's Role are refused at start, naming them. With the
//! Configuration's `HotReload` feature, a Component edited through the API server is swapped
//! in within seconds while a client keeps calling it, none of whose calls fail; Components
//! added (unless scoped to another app) and deleted follow.
#![allow(missing_docs)]

mod support;

use std::process::Command;
use std::time::Duration;

use layotto_test_support::{KubeApiServer, peers};
use serde_json::{Value, json};
use support::daprd::{Daprd, request};
use support::hot;

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn create(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .expect("API server answers");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Sends `method` to `path` with `body` (`content_type`), expecting a 2xx.
    async fn send(&self, method: reqwest::Method, path: &str, content_type: &str, body: &Value) {
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .expect("API server answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
    }

    async fn created(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.create(path, body).await;
        assert_eq!(status, 201, "create {path}: {v}");
        v
    }
}

/// Multi-document YAML as JSON values.
fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

fn chart_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/layotto-rs")
}

/// The chart's sidecar Role and RoleBinding for `namespace`, as Helm renders them.
fn chart_rbac(namespace: &str) -> Vec<Value> {
    let chart = chart_dir();
    let set = format!("sidecarNamespaces={{{namespace}}}");
    let args: Vec<&std::ffi::OsStr> = vec![
        "template".as_ref(),
        "layotto".as_ref(),
        chart.as_os_str(),
        "--show-only".as_ref(),
        "templates/sidecar-rbac.yaml".as_ref(),
        "--set".as_ref(),
        set.as_ref(),
    ];
    documents(&peers::helm(&args))
}

impl Api {
    /// Creates namespace `ns` with its `default` service account.
    async fn namespace(&self, ns: &str) {
        self.created("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await;
        self.created(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            &json!({"metadata": {"name": "default"}}),
        )
        .await;
    }

    /// Creates Configuration `name` with `spec` in namespace `shop`.
    async fn configuration(&self, name: &str, spec: Value) {
        self.created(
            "/apis/dapr.io/v1alpha1/namespaces/shop/configurations",
            &json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
                    "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }

    /// A token of `ns`'s `default` service account (TokenRequest API).
    async fn token(&self, ns: &str) -> String {
        self.created(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/default/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
        )
        .await["status"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A Component resource of `type_` with `metadata` items, loaded only by `scopes` (all apps
/// when empty).
fn component(name: &str, type_: &str, metadata: Value, scopes: &[&str]) -> Value {
    json!({
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": type_, "version": "v1", "metadata": metadata},
        "scopes": scopes,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_in_kubernetes_mode_serves_the_namespaces_resources() {
    let server = tokio::task::spawn_blocking(KubeApiServer::start)
        .await
        .unwrap();
    let admin = Api {
        base: server.url(),
        token: server.admin_token().to_owned(),
        http: reqwest::Client::builder()
            .use_preconfigured_tls(server.client_tls())
            .build()
            .unwrap(),
    };
    let crds = std::fs::read_to_string(chart_dir().join("crds/dapr-crds.yaml")).unwrap();
    for crd in documents(&crds) {
        admin
            .created(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                &crd,
            )
            .await;
    }
    admin.namespace("shop").await;
    for d in chart_rbac("shop") {
        let plural = if d["kind"] == "Role" {
            "roles"
        } else {
            "rolebindings"
        };
        admin
            .created(
                &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/shop/{plural}"),
                &d,
            )
            .await;
    }
    let components = "/apis/dapr.io/v1alpha1/namespaces/shop/components";
    for attempt in 0.. {
        let (status, v) = admin
            .create(
                components,
                &component("store", "state.in-memory", json!([]), &["orders"]),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(
            attempt < 50,
            "the CRDs were never established: {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin
        .created(
            components,
            &component("billing-store", "state.in-memory", json!([]), &["billing"]),
        )
        .await;
    admin
        .created(
            components,
            &component("pubsub", "pubsub.in-memory", json!([]), &[]),
        )
        .await;
    // An output binding whose url comes from a Kubernetes Secret (no auth.secretStore: the
    // built-in kubernetes store, as in Dapr's Kubernetes mode).
    let (hits_tx, mut hits) = tokio::sync::mpsc::unbounded_channel::<String>();
    let receiver = support::serve_app(axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let _ = hits_tx.send(body);
            async { "ok" }
        }),
    ))
    .await;
    admin
        .created(
            "/api/v1/namespaces/shop/secrets",
            &json!({"metadata": {"name": "endpoint"},
                    "stringData": {"url": format!("http://127.0.0.1:{receiver}/hook")}}),
        )
        .await;
    admin
        .created(
            components,
            &component(
                "hook",
                "bindings.http",
                json!([{"name": "url", "secretKeyRef": {"name": "endpoint", "key": "url"}}]),
                &[],
            ),
        )
        .await;
    for (name, key, value) in [("db", "password", "s3cret"), ("other", "x", "y")] {
        admin
            .created(
                "/api/v1/namespaces/shop/secrets",
                &json!({"metadata": {"name": name}, "stringData": {key: value}}),
            )
            .await;
    }
    // Subscriptions in both versions (no conversion webhook: v1alpha1 is served unconverted).
    admin
        .created(
            "/apis/dapr.io/v1alpha1/namespaces/shop/subscriptions",
            &json!({"apiVersion": "dapr.io/v1alpha1", "kind": "Subscription",
                    "metadata": {"name": "old-style"},
                    "spec": {"pubsubname": "pubsub", "topic": "t1", "route": "/t1"}}),
        )
        .await;
    admin
        .created(
            "/apis/dapr.io/v2alpha1/namespaces/shop/subscriptions",
            &json!({"apiVersion": "dapr.io/v2alpha1", "kind": "Subscription",
                    "metadata": {"name": "new-style"},
                    "spec": {"pubsubname": "pubsub", "topic": "t2",
                             "routes": {"default": "/t2"}}}),
        )
        .await;
    admin
        .configuration(
            "appconfig",
            json!({"secrets": {"scopes": [
                {"storeName": "kubernetes", "defaultAccess": "deny", "allowedSecrets": ["db"]}
            ]}}),
        )
        .await;
    let token = admin.token("shop").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(&token, "shop")).unwrap();
    let kc = kubeconfig.to_str().unwrap().to_owned();

    // The app: no programmatic subscriptions, so the declared ones are its.
    let app_port = support::serve_app(axum::Router::new().route(
        "/dapr/subscribe",
        axum::routing::get(|| async { axum::Json(json!([])) }),
    ))
    .await
    .to_string();
    let sidecar = sidecar(&kc, "appconfig", Some(app_port)).await;
    let http = sidecar.http;
    let meta = request(http, "GET", "/v1.0/metadata", &[], "").unwrap();
    let meta: Value = serde_json::from_str(&meta.body).unwrap();
    let names: Vec<&str> = meta["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"store"), "{names:?}");
    assert!(names.contains(&"kubernetes"), "{names:?}");
    assert!(
        !names.contains(&"billing-store"),
        "scoped to another app: {names:?}"
    );
    let subs = tokio::task::spawn_blocking(move || support::daprd::wait_for_subscriptions(http, 2))
        .await
        .unwrap();
    let mut topics: Vec<&str> = subs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["topic"].as_str().unwrap())
        .collect();
    topics.sort_unstable();
    assert_eq!(topics, ["t1", "t2"], "{subs}");

    let saved = request(
        http,
        "POST",
        "/v1.0/state/store",
        &[("content-type", "application/json")],
        r#"[{"key":"k","value":"v"}]"#,
    )
    .unwrap();
    assert_eq!(saved.status, 204, "{}", saved.body);
    let got = request(http, "GET", "/v1.0/state/store/k", &[], "").unwrap();
    assert_eq!(got.body, "\"v\"");

    let secret = request(http, "GET", "/v1.0/secrets/kubernetes/db", &[], "").unwrap();
    assert_eq!(secret.status, 200, "{}", secret.body);
    assert_eq!(
        serde_json::from_str::<Value>(&secret.body).unwrap(),
        json!({"password": "s3cret"})
    );
    // The Configuration read from the API server denies every other secret.
    let denied = request(http, "GET", "/v1.0/secrets/kubernetes/other", &[], "").unwrap();
    assert_eq!(denied.status, 403, "{}", denied.body);
    let published = request(
        http,
        "POST",
        "/v1.0/publish/pubsub/orders",
        &[("content-type", "application/json")],
        r#"{"n":1}"#,
    )
    .unwrap();
    assert_eq!(published.status, 204, "{}", published.body);
    let invoked = request(
        http,
        "POST",
        "/v1.0/bindings/hook",
        &[("content-type", "application/json")],
        r#"{"operation":"post","data":"from the sidecar"}"#,
    )
    .unwrap();
    assert_eq!(invoked.status, 200, "{}", invoked.body);
    let hit = tokio::time::timeout(Duration::from_secs(5), hits.recv())
        .await
        .expect("the binding reached the url from the Secret")
        .unwrap();
    assert!(hit.contains("from the sidecar"), "{hit}");
    drop(sidecar);

    hot_reload(&admin, kubeconfig.to_str().unwrap()).await;

    // The command line the injector gives a pod's sidecar is one this binary accepts, in
    // Kubernetes mode against this server.
    let annotated = json!({
        "metadata": {"name": "orders-1", "annotations": {
            "dapr.io/enabled": "true", "dapr.io/app-id": "orders", "dapr.io/app-port": "8080",
            "dapr.io/config": "appconfig", "dapr.io/enable-app-health-check": "true"}},
        "spec": {"containers": [{"name": "app", "image": "orders:1"}]}
    });
    let layotto_injector::Decision::Patch { ops, .. } =
        layotto_injector::pod_patch(&annotated, &layotto_injector::InjectorConfig::default())
    else {
        panic!("the pod is not injected");
    };
    let injected = layotto_injector::patch::apply(&annotated, &ops).unwrap();
    let args: Vec<&str> = injected["spec"]["containers"][1]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_layotto"))
        .arg("validate")
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .env("NAMESPACE", "shop")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Component of a type this build lacks stops the start, naming it.
    admin
        .created(
            components,
            &component("broken", "state.nosuchstore", json!([]), &[]),
        )
        .await;
    let out = Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args(["validate", "--mode", "kubernetes", "--app-id", "orders"])
        .env("KUBECONFIG", &kubeconfig)
        .env("NAMESPACE", "shop")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("broken") && err.contains("nosuchstore"),
        "{err}"
    );

    // A namespace without the chart's Role: the sidecar stops at start, saying why.
    admin.namespace("bare").await;
    let token = admin.token("bare").await;
    std::fs::write(&kubeconfig, server.kubeconfig(&token, "bare")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args([
            "--mode",
            "kubernetes",
            "--app-id",
            "orders",
            "--dapr-http-port",
            "0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("NAMESPACE", "bare")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("forbidden") && err.contains("components"),
        "{err}"
    );
}

/// A sidecar of app `orders` in Kubernetes mode in namespace `shop` (kubeconfig
/// `kubeconfig`), with the Configuration named `config`, reaching the app at `app_port`.
async fn sidecar(kubeconfig: &str, config: &str, app_port: Option<String>) -> Daprd {
    let (kc, config) = (kubeconfig.to_owned(), config.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "--mode",
            "kubernetes",
            "--app-id",
            "orders",
            "--config",
            &config,
        ];
        if let Some(p) = &app_port {
            args.extend(["--app-port", p.as_str()]);
        }
        Daprd::start(
            &[],
            &args,
            &[("KUBECONFIG", &kc), ("NAMESPACE", "shop")],
            None,
        )
    })
    .await
    .unwrap()
}

/// `HotReload` on: Components edited, added and deleted through the API server reach a
/// running sidecar of app `orders` in namespace `shop` (kubeconfig `kubeconfig`).
async fn hot_reload(admin: &Api, kubeconfig: &str) {
    let redis = tokio::task::spawn_blocking(layotto_test_support::RedisServer::start)
        .await
        .unwrap();
    admin
        .configuration(
            "hot",
            json!({"features": [{"name": "HotReload", "enabled": true}]}),
        )
        .await;
    let sidecar = sidecar(kubeconfig, "hot", None).await;
    let http = sidecar.http;
    // `store` edited from state.in-memory to state.redis while a client calls it.
    tokio::task::block_in_place(|| {
        hot::swap_to_redis_under_load(http, "store", "orders", redis.port(), || {
            let patch = json!({"spec": {"type": "state.redis", "metadata": [
                {"name": "redisHost", "value": redis.addr()}]}});
            tokio::runtime::Handle::current().block_on(admin.send(
                reqwest::Method::PATCH,
                "/apis/dapr.io/v1alpha1/namespaces/shop/components/store",
                "application/merge-patch+json",
                &patch,
            ));
        });
    });

    // Added (one scoped to another app, which stays out) and deleted.
    let components = "/apis/dapr.io/v1alpha1/namespaces/shop/components";
    for (name, scopes) in [("late-billing", &["billing"][..]), ("late", &[])] {
        admin
            .created(
                components,
                &component(name, "state.in-memory", json!([]), scopes),
            )
            .await;
    }
    admin
        .send(
            reqwest::Method::DELETE,
            &format!("{components}/pubsub"),
            "application/json",
            &json!({}),
        )
        .await;
    tokio::task::spawn_blocking(move || {
        hot::eventually("late added, pubsub removed", || {
            let n = hot::component_names(http);
            n.contains(&"late".to_owned()) && !n.contains(&"pubsub".to_owned())
        });
        assert!(!hot::component_names(http).contains(&"late-billing".to_owned()));
    })
    .await
    .unwrap();
    drop(sidecar);
}
