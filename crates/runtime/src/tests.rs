//! Unit tests of the runtime: building, the one call path, key layouts, warnings, health.
//! Components here are small in-test implementations of the contracts, so the runtime is
//! tested without any backend crate (it never names one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use layotto_config::{AppConfig, ComponentEntry, Config, Kind, ListenAddr, Origin};
use layotto_core::binding::{BindingRequest, BindingResponse, OutputBinding};
use layotto_core::state::{DeleteRequest, SetRequest, StateItem, StateStore, TransactionOp};
use layotto_core::{
    Component, ComponentMetadata, ComponentSpec, ErrorKind, Feature, Health, HealthStatus,
    Metadata, MetadataKeys, Registries, Result,
};

use crate::{Runtime, with_deadline};

/// A state store over a map that records the keys it is given; `delay` slows every call.
#[derive(Default)]
struct MapState {
    data: Mutex<HashMap<String, Bytes>>,
    delay: Duration,
    down: bool,
    label: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MapStateMetadata {
    delay_ms: u64,
    down: bool,
    label: String,
}
impl ComponentMetadata for MapStateMetadata {
    const NO_EFFECT: &'static [&'static str] = &["poolSize"];
}

/// The metadata every `map` component was built with, by component name.
static SEEN: Mutex<Vec<(String, Metadata)>> = Mutex::new(Vec::new());

/// The `label` of every `map` component closed.
static CLOSED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[async_trait]
impl Component for MapState {
    async fn health(&self) -> Health {
        if self.down {
            Health::down("map is down")
        } else {
            Health::up()
        }
    }
    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag]
    }
    async fn close(&self) -> Result<()> {
        crate::lock(&CLOSED).push(self.label.clone());
        Ok(())
    }
}

#[async_trait]
impl StateStore for MapState {
    async fn get(&self, key: &str, _: &Metadata) -> Result<Option<StateItem>> {
        tokio::time::sleep(self.delay).await;
        Ok(crate::lock(&self.data).get(key).map(|v| StateItem {
            data: v.clone(),
            etag: None,
            metadata: Metadata::new(),
        }))
    }
    async fn set(&self, req: SetRequest) -> Result<()> {
        crate::lock(&self.data).insert(req.key, req.value);
        Ok(())
    }
    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        crate::lock(&self.data).remove(&req.key);
        Ok(())
    }
    async fn transact(&self, _: Vec<TransactionOp>, _: &Metadata) -> Result<()> {
        Err(layotto_core::Error::unsupported("no transactions"))
    }
}

struct Echo;
#[async_trait]
impl Component for Echo {}
#[async_trait]
impl OutputBinding for Echo {
    fn operations(&self) -> Vec<String> {
        vec!["echo".to_owned()]
    }
    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse> {
        Ok(BindingResponse {
            data: req.data,
            metadata: Metadata::new(),
        })
    }
}

#[derive(serde::Deserialize)]
struct NoMetadata {}
impl ComponentMetadata for NoMetadata {}

fn registries() -> Registries {
    let mut r = Registries::new();
    r.register::<dyn StateStore>(
        &["map"],
        MetadataKeys::of::<MapStateMetadata>(),
        |spec: &ComponentSpec| {
            let m: MapStateMetadata = layotto_core::metadata::decode(spec)?;
            crate::lock(&SEEN).push((spec.name.clone(), spec.metadata.clone()));
            Ok(Arc::new(MapState {
                delay: Duration::from_millis(m.delay_ms),
                down: m.down,
                label: m.label,
                ..MapState::default()
            }) as Arc<dyn StateStore>)
        },
    )
    .expect("register map");
    r.register::<dyn OutputBinding>(&["echo"], MetadataKeys::of::<NoMetadata>(), |_| {
        Ok(Arc::new(Echo) as Arc<dyn OutputBinding>)
    })
    .expect("register echo");
    r
}

fn entry(
    kind: Kind,
    name: &str,
    type_: &str,
    origin: Origin,
    meta: &[(&str, &str)],
) -> ComponentEntry {
    ComponentEntry {
        kind,
        spec: meta
            .iter()
            .fold(ComponentSpec::new(name, type_), |s, (k, v)| s.with(*k, *v)),
        path: format!("$.{name}"),
        file: "test.json".to_owned(),
        origin,
        secret_refs: Vec::new(),
        secret_store: None,
        component_refs: Vec::new(),
    }
}

fn config(components: Vec<ComponentEntry>) -> Config {
    Config {
        source: "test".to_owned(),
        grpc: ListenAddr::Tcp("127.0.0.1:0".parse().expect("addr")),
        actuator: None,
        app: AppConfig {
            app_id: "app1".to_owned(),
            ..AppConfig::default()
        },
        components,
        ..Config::default()
    }
}

#[tokio::test]
async fn every_block_resolves_stores_the_same_way() {
    let rt = Runtime::build(&config(vec![]), &registries()).expect("builds");
    let e = rt
        .get_state("s", "k", &Metadata::new())
        .await
        .expect_err("none");
    assert_eq!(e.kind, ErrorKind::NotConfigured, "{e}");
    let rt = Runtime::build(
        &config(vec![entry(Kind::State, "s1", "map", Origin::Layotto, &[])]),
        &registries(),
    )
    .expect("builds");
    let e = rt
        .get_state("", "k", &Metadata::new())
        .await
        .expect_err("empty");
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("s1"), "lists the known stores: {e}");
    let e = rt
        .get_state("s2", "k", &Metadata::new())
        .await
        .expect_err("unknown");
    assert_eq!(e.kind, ErrorKind::StoreNotFound);
    let e = rt
        .invoke_binding(
            "b",
            BindingRequest {
                operation: "echo".into(),
                ..BindingRequest::default()
            },
        )
        .await
        .expect_err("no binding");
    assert_eq!(e.kind, ErrorKind::NotConfigured);
}

#[tokio::test]
async fn key_layouts_follow_the_origin() {
    let rt = Runtime::build(
        &config(vec![
            entry(Kind::State, "layotto", "map", Origin::Layotto, &[]),
            entry(Kind::State, "dapr", "map", Origin::Dapr, &[]),
        ]),
        &registries(),
    )
    .expect("builds");
    for store in ["layotto", "dapr"] {
        rt.save_state(
            store,
            vec![SetRequest {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                ..SetRequest::default()
            }],
        )
        .await
        .expect("save");
        let bulk = rt
            .get_bulk_state(store, &["k".to_owned()], &Metadata::new())
            .await
            .expect("bulk");
        assert_eq!(bulk[0].key, "k", "keys come back as the client gave them");
        let item = rt
            .get_state(store, "k", &Metadata::new())
            .await
            .expect("get");
        assert_eq!(item.map(|i| i.data), Some(Bytes::from_static(b"v")));
    }
    let e = rt
        .get_state("dapr", "a||b", &Metadata::new())
        .await
        .expect_err("separator in a key");
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn a_call_past_its_deadline_is_unavailable() {
    let rt = Runtime::build(
        &config(vec![entry(
            Kind::State,
            "slow",
            "map",
            Origin::Layotto,
            &[("delayMs", "5000")],
        )]),
        &registries(),
    )
    .expect("builds");
    let started = Instant::now();
    let e = with_deadline(
        Instant::now() + Duration::from_millis(50),
        rt.get_state("slow", "k", &Metadata::new()),
    )
    .await
    .expect_err("deadline");
    assert_eq!(e.kind, ErrorKind::DeadlineExceeded, "{e}");
    assert!(
        e.message.contains("slow") && e.message.contains("get"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn metadata_warnings_placeholders_and_capabilities() {
    let cfg = config(vec![
        entry(
            Kind::State,
            "dapr_store",
            "map",
            Origin::Dapr,
            &[("LABEL", "{appID}-x"), ("poolSize", "3"), ("bogus", "1")],
        ),
        entry(Kind::Binding, "b", "echo", Origin::Dapr, &[]),
    ]);
    let warnings = crate::validate(&cfg, &registries()).expect("unknown keys are no problems");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].message.contains("'bogus'") && warnings[0].message.contains("delayMs"));
    assert!(warnings[1].message.contains("poolSize") && warnings[1].message.contains("no effect"));
    let rt = Runtime::build(&cfg, &registries()).expect("builds");
    assert_eq!(rt.warnings().len(), 2);
    let seen = crate::lock(&SEEN).clone();
    let (_, meta) = seen
        .iter()
        .rev()
        .find(|(n, _)| n == "dapr_store")
        .expect("built");
    assert_eq!(meta["LABEL"], "app1-x", "{{appID}} is substituted");
    let caps: Vec<(String, Vec<String>)> = rt
        .components()
        .iter()
        .map(|c| (c.dapr_type(), c.capabilities.clone()))
        .collect();
    assert_eq!(
        caps,
        [
            ("state.map".to_owned(), vec!["ETAG".to_owned()]),
            (
                "bindings.echo".to_owned(),
                vec!["OUTPUT_BINDING".to_owned()]
            ),
        ]
    );
    let e = Runtime::build(
        &config(vec![entry(Kind::State, "s", "mop", Origin::Layotto, &[])]),
        &registries(),
    )
    .err()
    .expect("unknown type");
    assert!(e.to_string().contains("known types: map"), "{e}");
}

#[tokio::test]
async fn readiness_follows_component_health() {
    let rt = Runtime::build(
        &config(vec![
            entry(Kind::State, "up", "map", Origin::Layotto, &[]),
            entry(
                Kind::State,
                "down",
                "map",
                Origin::Layotto,
                &[("down", "true")],
            ),
        ]),
        &registries(),
    )
    .expect("builds");
    assert_eq!(rt.readiness().await.status, HealthStatus::Init);
    rt.init().await.expect("init");
    rt.mark_started();
    let r = rt.readiness().await;
    assert_eq!(r.status, HealthStatus::Down);
    assert_eq!(r.components["state/up"].status, HealthStatus::Up);
    assert_eq!(r.components["state/down"].details["reason"], "map is down");
    rt.close().await;
}

/// A pub/sub that records the consumer group of each subscription.
#[derive(Default)]
struct Groups(Mutex<Vec<String>>);
#[async_trait]
impl Component for Groups {}
#[async_trait]
impl layotto_core::pubsub::PubSub for Groups {
    async fn publish(&self, _: layotto_core::pubsub::Message) -> Result<()> {
        Ok(())
    }
    async fn subscribe(
        &self,
        req: layotto_core::pubsub::SubscribeRequest,
        _: layotto_core::pubsub::Handler,
    ) -> Result<layotto_core::pubsub::Subscription> {
        crate::lock(&self.0).push(req.metadata.get("consumerID").cloned().unwrap_or_default());
        Ok(layotto_core::pubsub::Subscription::new(|| {}))
    }
}

#[tokio::test]
async fn the_consumer_group_is_the_subscriptions_then_the_components_then_the_app_id() {
    use layotto_core::pubsub::PubSub;
    let groups: Arc<Groups> = Arc::default();
    let mut r = registries();
    let g = groups.clone();
    r.register::<dyn PubSub>(&["groups"], MetadataKeys::of::<NoMetadata>(), move |_| {
        Ok(g.clone() as Arc<dyn PubSub>)
    })
    .expect("register");
    let cfg = config(vec![
        entry(Kind::PubSub, "plain", "groups", Origin::Layotto, &[]),
        entry(
            Kind::PubSub,
            "grouped",
            "groups",
            Origin::Layotto,
            &[("consumerid", "g1")],
        ),
    ]);
    let warnings = crate::validate(&cfg, &r).expect("valid");
    assert!(
        warnings.is_empty(),
        "consumerID is the runtime's: {warnings:?}"
    );
    let rt = Runtime::build(&cfg, &r).expect("builds");
    let handler = |_: crate::TopicEvent| -> futures::future::BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    };
    let own = Metadata::from([("consumerID".to_owned(), "mine".to_owned())]);
    let _a = rt
        .subscribe("plain", "t", Metadata::new(), handler)
        .await
        .expect("sub");
    let _b = rt
        .subscribe("grouped", "t", Metadata::new(), handler)
        .await
        .expect("sub");
    let _c = rt
        .subscribe("grouped", "t", own, handler)
        .await
        .expect("sub");
    assert_eq!(*crate::lock(&groups.0), ["app1", "g1", "mine"]);
}

/// A secret store with one secret `db` = `{pw: s3cr3t}`.
struct OneSecret;
#[async_trait]
impl Component for OneSecret {}
#[async_trait]
impl layotto_core::secret::SecretStore for OneSecret {
    async fn get(&self, key: &str, _: &Metadata) -> Result<layotto_core::secret::Secret> {
        match key {
            "db" => Ok(HashMap::from([("pw".to_owned(), "s3cr3t".to_owned())])),
            other => Err(layotto_core::Error::not_found(format!(
                "no secret '{other}'"
            ))),
        }
    }
    async fn bulk_get(
        &self,
        _: &Metadata,
    ) -> Result<HashMap<String, layotto_core::secret::Secret>> {
        Ok(HashMap::new())
    }
}

#[tokio::test]
async fn layotto_secret_refs_are_injected_and_component_refs_checked() {
    use layotto_config::{ComponentRef, SecretRef};
    use layotto_core::secret::SecretStore;
    let mut r = registries();
    r.register::<dyn SecretStore>(&["one"], MetadataKeys::of::<NoMetadata>(), |_| {
        Ok(Arc::new(OneSecret) as Arc<dyn SecretStore>)
    })
    .expect("register");
    let reference = |key: &str, sub: &str| SecretRef {
        metadata_key: "label".to_owned(),
        secret_name: key.to_owned(),
        secret_key: sub.to_owned(),
        store: Some("vault".to_owned()),
    };
    let mut state = entry(Kind::State, "s", "map", Origin::Layotto, &[]);
    state.secret_refs = vec![reference("db", "pw")];
    state.component_refs = vec![ComponentRef {
        kind: Kind::Secret,
        name: "vault".to_owned(),
        path: "$.s.component_ref.secret_store".to_owned(),
    }];
    let mut cfg = config(vec![
        entry(Kind::Secret, "vault", "one", Origin::Layotto, &[]),
        state,
    ]);
    let warnings = crate::validate(&cfg, &r).expect("valid");
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("component_ref") && w.message.contains("no effect")),
        "{warnings:?}"
    );
    crate::resolve_secret_refs(&mut cfg, &r)
        .await
        .expect("resolves");
    let s = cfg
        .components
        .iter()
        .find(|e| e.spec.name == "s")
        .expect("state");
    assert_eq!(s.spec.metadata["label"], "s3cr3t");

    let mut bad = entry(Kind::State, "s", "map", Origin::Layotto, &[]);
    bad.secret_refs = vec![reference("db", "nope"), reference("gone", "pw")];
    bad.component_refs = vec![ComponentRef {
        kind: Kind::Configuration,
        name: "cfg".to_owned(),
        path: "$.s.component_ref.config_store".to_owned(),
    }];
    let mut cfg = config(vec![
        entry(Kind::Secret, "vault", "one", Origin::Layotto, &[]),
        bad,
    ]);
    let p = crate::validate(&cfg, &r).expect_err("config_store 'cfg' is missing");
    assert!(p.to_string().contains("config_store 'cfg'"), "{p}");
    let p = crate::resolve_secret_refs(&mut cfg, &r)
        .await
        .expect_err("missing secrets");
    let text = p.to_string();
    assert!(
        text.contains("has no key 'nope'") && text.contains("'vault'"),
        "{text}"
    );
    assert!(text.contains("secret 'gone'"), "{text}");
}

fn set(key: &str, value: &'static str) -> Vec<SetRequest> {
    vec![SetRequest {
        key: key.to_owned(),
        value: Bytes::from_static(value.as_bytes()),
        etag: None,
        metadata: Metadata::new(),
        options: Default::default(),
    }]
}

#[tokio::test]
async fn a_reload_swaps_changed_components_after_their_calls_return() {
    let registries = registries();
    let store = |label: &str, delay: &str| {
        entry(
            Kind::State,
            "s",
            "map",
            Origin::Dapr,
            &[("label", label), ("delayMs", delay)],
        )
    };
    let first = config(vec![
        store("reload-one", "300"),
        entry(Kind::Binding, "b", "echo", Origin::Dapr, &[]),
    ]);
    let rt = Arc::new(Runtime::build(&first, &registries).expect("builds"));
    rt.init().await.expect("init");
    rt.save_state("s", set("k", "v1")).await.expect("saved");

    // A call in flight when the store is replaced finishes on the old one.
    let in_flight = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.get_state("s", "k", &Metadata::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = config(vec![
        store("reload-two", "0"),
        entry(Kind::State, "t", "map", Origin::Dapr, &[]),
    ]);
    let out = rt.reload(&second, &registries).await;
    assert_eq!(out.updated, ["state/s"], "{out:?}");
    assert_eq!(out.added, ["state/t"], "{out:?}");
    assert_eq!(out.removed, ["bindings/b"], "{out:?}");
    assert!(out.failed.is_empty(), "{out:?}");
    assert!(
        !crate::lock(&CLOSED).contains(&"reload-one".to_owned()),
        "closed under a call"
    );
    let old = in_flight
        .await
        .expect("joins")
        .expect("the old store answers");
    assert_eq!(old.expect("found").data, "v1");
    let closed_at = Instant::now() + Duration::from_secs(2);
    while !crate::lock(&CLOSED).contains(&"reload-one".to_owned()) {
        assert!(
            Instant::now() < closed_at,
            "the replaced store is never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The new store is the one serving; the removed binding is gone, the added store serves.
    assert!(
        rt.get_state("s", "k", &Metadata::new())
            .await
            .expect("get")
            .is_none()
    );
    let e = rt
        .invoke_binding("b", BindingRequest::default())
        .await
        .expect_err("removed");
    assert_eq!(e.kind, ErrorKind::NotConfigured, "{e}");
    rt.save_state("t", set("k", "t1"))
        .await
        .expect("the added store serves");
    let names: Vec<String> = rt.components().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["s", "t"]);

    // The same configuration again changes nothing: the data stays.
    rt.save_state("s", set("k", "v2")).await.expect("saved");
    assert!(rt.reload(&second, &registries).await.is_empty());
    let kept = rt.get_state("s", "k", &Metadata::new()).await.expect("get");
    assert_eq!(kept.expect("kept").data, "v2");

    // A new version that cannot be built leaves the old one serving.
    let broken = config(vec![
        entry(Kind::State, "s", "nosuch", Origin::Dapr, &[]),
        entry(Kind::State, "t", "map", Origin::Dapr, &[]),
    ]);
    let out = rt.reload(&broken, &registries).await;
    assert_eq!(out.failed.len(), 1, "{out:?}");
    assert_eq!(out.failed[0].0, "state/s");
    assert!(out.failed[0].1.contains("nosuch"), "{out:?}");
    let kept = rt.get_state("s", "k", &Metadata::new()).await.expect("get");
    assert_eq!(kept.expect("still served").data, "v2");
}
