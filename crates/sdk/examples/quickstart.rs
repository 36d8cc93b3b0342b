//! Quickstart: walks through every building block against a running sidecar.
//!
//! ```text
//! cargo run -p layotto -- start -c configs/config_standalone.json &
//! cargo run -p layotto-sdk --example quickstart
//! ```
//! The sidecar address comes from `LAYOTTO_ADDR` (default `http://127.0.0.1:34904`). Component
//! names are those of `configs/config_standalone.json`. Exits non-zero at the first failure.

use std::collections::HashMap;
use std::time::Duration;

use layotto_sdk::{Client, EventStatus, Increment, pb};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(addr: &str) -> Result<Client, BoxError> {
    // The sidecar may still be starting: retry for up to 10 s.
    let mut last = None;
    for _ in 0..100 {
        match Client::connect(addr.to_owned()).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cannot reach the sidecar at {addr}: {last:?}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::var("LAYOTTO_ADDR").unwrap_or_else(|_| "http://127.0.0.1:34904".into());
    let c = connect(&addr).await?;

    // Hello
    println!(
        "[hello] {}",
        c.say_hello("quick_start_demo", "layotto-rs").await?
    );

    // State
    let store = "state_demo";
    c.save_state(store, "quickstart", b"hello world".to_vec())
        .await?;
    let got = c
        .get_state(store, "quickstart")
        .await?
        .ok_or("state missing after save")?;
    println!(
        "[state] get -> {:?} (etag {})",
        String::from_utf8_lossy(&got.data),
        got.etag
    );
    let stale = c
        .save_states(
            store,
            vec![pb::StateItem {
                key: "quickstart".into(),
                value: b"overwrite".to_vec(),
                etag: Some(pb::Etag {
                    value: "not-the-etag".into(),
                }),
                ..Default::default()
            }],
        )
        .await;
    println!(
        "[state] save with a stale etag -> {}",
        match stale {
            Err(e) => format!("refused: {e}"),
            Ok(()) => return Err("stale etag was accepted".into()),
        }
    );
    c.delete_state(store, "quickstart", Some(&got.etag)).await?;
    println!(
        "[state] after delete -> {:?}",
        c.get_state(store, "quickstart").await?
    );

    // Lock
    let lock = "lock_demo";
    let a = c.try_lock(lock, "order-1", "owner-a", 10).await?;
    let b = c.try_lock(lock, "order-1", "owner-b", 10).await?;
    let kept = c.lock_keep_alive(lock, "order-1", "owner-a", 20).await?;
    let by_b = c.unlock(lock, "order-1", "owner-b").await?;
    let by_a = c.unlock(lock, "order-1", "owner-a").await?;
    println!(
        "[lock] owner-a got it: {a}; owner-b got it: {b}; keep-alive: {kept:?}; unlock by b: {by_b:?}; unlock by a: {by_a:?}"
    );

    // Sequencer
    let mut ids = Vec::new();
    for inc in [Increment::Strong, Increment::Weak, Increment::Weak] {
        ids.push(c.get_next_id("sequencer_demo", "key666", inc).await?);
    }
    println!("[sequencer] ids for key666 (floor 1000): {ids:?}");

    // Configuration
    let cfg = "config_demo";
    let mut changes = c
        .subscribe_configuration(pb::SubscribeConfigurationRequest {
            store_name: cfg.into(),
            keys: vec!["timeout".into()],
            ..Default::default()
        })
        .await?;
    c.save_configuration(pb::SaveConfigurationRequest {
        store_name: cfg.into(),
        items: vec![pb::ConfigurationItem {
            key: "timeout".into(),
            content: "30s".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await?;
    let items = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: cfg.into(),
            keys: vec!["timeout".into()],
            ..Default::default()
        })
        .await?;
    println!(
        "[configuration] get -> {:?}",
        items
            .iter()
            .map(|i| (&i.key, &i.content))
            .collect::<Vec<_>>()
    );
    let change = tokio::time::timeout(Duration::from_secs(5), changes.message())
        .await
        .map_err(|_| "no configuration change arrived")??
        .ok_or("configuration stream ended")?;
    println!(
        "[configuration] subscriber saw -> {:?}",
        change
            .items
            .iter()
            .map(|i| (&i.key, &i.content))
            .collect::<Vec<_>>()
    );

    // Pub/sub (streaming subscription)
    let mut events = c.subscribe_topic_events("pub_subs_demo", "orders").await?;
    c.publish_event(
        "pub_subs_demo",
        "orders",
        br#"{"order":42}"#.to_vec(),
        "application/json",
    )
    .await?;
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .map_err(|_| "no event arrived")??
        .ok_or("event stream ended")?;
    events.ack(&ev.id, EventStatus::Success).await?;
    println!(
        "[pubsub] received on '{}': {} (CloudEvent id {})",
        ev.topic,
        String::from_utf8_lossy(&ev.data),
        ev.id
    );

    // Secrets (local.env store with prefix LAYOTTO_SECRET_)
    match c.get_secret("secret_demo", "QUICKSTART").await {
        Ok(s) => println!("[secrets] QUICKSTART -> {s:?}"),
        Err(e) => {
            println!("[secrets] QUICKSTART not set ({e}); set LAYOTTO_SECRET_QUICKSTART to see one")
        }
    }
    let bulk = c.get_bulk_secret("secret_demo").await?;
    println!("[secrets] bulk: {} secret(s)", bulk.len());

    // Files
    let files = "file_demo";
    c.put_file(files, "quickstart/hello.txt", b"file content")
        .await?;
    let content = c.get_file(files, "quickstart/hello.txt").await?;
    let meta = c.get_file_meta(files, "quickstart/hello.txt").await?;
    let list = c.list_file(files, "quickstart", 10, "").await?;
    println!(
        "[file] read back {:?}, size {}, listed {:?}",
        String::from_utf8_lossy(&content),
        meta.size,
        list.files.iter().map(|f| &f.file_name).collect::<Vec<_>>()
    );
    c.del_file(files, "quickstart/hello.txt").await?;
    let escape = c.get_file(files, "../etc/passwd").await;
    println!(
        "[file] '../etc/passwd' -> {}",
        match escape {
            Err(e) => format!("refused: {e}"),
            Ok(_) => return Err("path escaping the root was served".into()),
        }
    );

    // Bindings (http binding pointed at the sidecar's own actuator)
    let mut md = HashMap::new();
    md.insert("path".to_owned(), "/health/liveness".to_owned());
    let resp = c.invoke_binding("http_demo", "get", Vec::new(), md).await?;
    println!(
        "[bindings] GET actuator liveness -> {} (status {})",
        String::from_utf8_lossy(&resp.data),
        resp.metadata.get("statusCode").map_or("?", String::as_str)
    );

    // Lifecycle
    let mut md = HashMap::new();
    md.insert("hello".to_owned(), "hi".to_owned());
    c.apply_configuration("hellos", "quick_start_demo", md)
        .await?;
    println!(
        "[lifecycle] after ApplyConfiguration: {}",
        c.say_hello("quick_start_demo", "layotto-rs").await?
    );

    println!("quickstart: every building block answered");
    Ok(())
}
