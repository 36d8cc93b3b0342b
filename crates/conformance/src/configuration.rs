//! Suite of the [`ConfigStore`] contract: set/get with tags, group and label, get-all, delete
//! and change subscriptions.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use layotto_core::configuration::{ConfigChanges, ConfigItem, ConfigQuery, ConfigStore};
use layotto_core::{Feature, Metadata};

use crate::run::SuiteRun;
use crate::{unique, within};

/// How long a subscriber may take to see a change.
const CHANGE_WAIT: Duration = Duration::from_secs(5);

/// The features this suite has cases for: none (Dapr defines no configuration features); a
/// component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// Runs every case of this suite, each against a fresh component from `factory`.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn ConfigStore>>,
{
    let mut run = SuiteRun::start("configuration", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("configuration::set_get", async {
        set_get(&*f().await).await;
    })
    .await;
    run.case("configuration::get_all", async {
        get_all(&*f().await).await;
    })
    .await;
    run.case("configuration::delete", async {
        delete(&*f().await).await;
    })
    .await;
    run.case("configuration::subscribe_change_and_delete", async {
        subscribe_change_and_delete(&*f().await).await;
    })
    .await;
    run.case("configuration::subscribe_other_key", async {
        subscribe_other_key(&*f().await).await;
    })
    .await;
    run.finish();
}

/// A unique app id, group and label for one case.
struct Scope {
    app_id: String,
    group: String,
    label: String,
}

impl Scope {
    fn new(case: &str) -> Self {
        Self {
            app_id: unique(&format!("app-{case}")),
            group: unique("group"),
            label: unique("label"),
        }
    }
    fn item(&self, key: &str, content: &str) -> ConfigItem {
        ConfigItem {
            key: key.to_owned(),
            content: content.to_owned(),
            group: self.group.clone(),
            label: self.label.clone(),
            ..Default::default()
        }
    }
    fn query(&self, keys: &[&str]) -> ConfigQuery {
        ConfigQuery {
            app_id: self.app_id.clone(),
            group: self.group.clone(),
            label: self.label.clone(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            metadata: Metadata::new(),
        }
    }
    async fn set(&self, store: &dyn ConfigStore, items: Vec<ConfigItem>, case: &str) {
        store
            .set(&self.app_id, items, &Metadata::new())
            .await
            .unwrap_or_else(|e| panic!("{case}: set failed: {e}"));
    }
    async fn get(&self, store: &dyn ConfigStore, keys: &[&str], case: &str) -> Vec<ConfigItem> {
        let mut items = store
            .get(&self.query(keys))
            .await
            .unwrap_or_else(|e| panic!("{case}: get {keys:?} failed: {e}"));
        items.sort_by(|a, b| a.key.cmp(&b.key));
        items
    }
}

/// An item written with tags, group and label reads back with all of them.
pub async fn set_get(store: &dyn ConfigStore) {
    let case = "configuration::set_get";
    let s = Scope::new("set-get");
    let tags: HashMap<String, String> = [("env".to_owned(), "test".to_owned())].into();
    let item = ConfigItem {
        tags: tags.clone(),
        ..s.item("color", "blue")
    };
    s.set(store, vec![item, s.item("size", "L")], case).await;
    let got = s.get(store, &["color"], case).await;
    assert_eq!(got.len(), 1, "{case}: one item asked, got {got:?}");
    let g = &got[0];
    assert_eq!(
        (g.key.as_str(), g.content.as_str()),
        ("color", "blue"),
        "{case}: key and content"
    );
    assert_eq!(g.group, s.group, "{case}: group");
    assert_eq!(g.label, s.label, "{case}: label");
    assert_eq!(g.tags, tags, "{case}: tags");
    s.set(store, vec![s.item("color", "red")], case).await;
    let got = s.get(store, &["color", "absent"], case).await;
    assert_eq!(
        got.len(),
        1,
        "{case}: absent keys are left out, got {got:?}"
    );
    assert_eq!(got[0].content, "red", "{case}: replaced content");
}

/// A get with no keys returns every item of the group and label, and nothing of another label.
pub async fn get_all(store: &dyn ConfigStore) {
    let case = "configuration::get_all";
    let s = Scope::new("get-all");
    let other = Scope {
        label: unique("other-label"),
        app_id: s.app_id.clone(),
        group: s.group.clone(),
    };
    s.set(
        store,
        vec![s.item("a", "1"), s.item("b", "2"), s.item("c", "3")],
        case,
    )
    .await;
    other.set(store, vec![other.item("z", "9")], case).await;
    let got = s.get(store, &[], case).await;
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|i| (i.key.as_str(), i.content.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("a", "1"), ("b", "2"), ("c", "3")],
        "{case}: all items of the label"
    );
}

/// Deleting a key removes it and keeps the others.
pub async fn delete(store: &dyn ConfigStore) {
    let case = "configuration::delete";
    let s = Scope::new("delete");
    s.set(store, vec![s.item("a", "1"), s.item("b", "2")], case)
        .await;
    store
        .delete(&s.query(&["a"]))
        .await
        .unwrap_or_else(|e| panic!("{case}: delete failed: {e}"));
    let keys: Vec<String> = s
        .get(store, &[], case)
        .await
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["b"], "{case}: left after deleting 'a'");
    assert!(
        s.get(store, &["a"], case).await.is_empty(),
        "{case}: 'a' still readable"
    );
}

async fn subscribe(store: &dyn ConfigStore, q: &ConfigQuery, case: &str) -> ConfigChanges {
    store
        .subscribe(q)
        .await
        .unwrap_or_else(|e| panic!("{case}: subscribe failed: {e}"))
}

/// Waits for the next batch holding `key`; panics on any item of another key.
async fn next_change(rx: &mut ConfigChanges, key: &str, case: &str) -> ConfigItem {
    within(CHANGE_WAIT, &format!("{case}: change of '{key}'"), async {
        loop {
            let batch = rx
                .recv()
                .await
                .unwrap_or_else(|| panic!("{case}: subscription closed"));
            for i in &batch {
                assert_eq!(i.key, key, "{case}: got a change of another key: {i:?}");
            }
            if let Some(i) = batch.into_iter().last() {
                return i;
            }
        }
    })
    .await
}

/// A subscriber sees a later write of its key (within 5 s) and its deletion (empty content).
pub async fn subscribe_change_and_delete(store: &dyn ConfigStore) {
    let case = "configuration::subscribe_change_and_delete";
    let s = Scope::new("subscribe");
    let mut rx = subscribe(store, &s.query(&["watched"]), case).await;
    s.set(store, vec![s.item("watched", "v1")], case).await;
    let got = next_change(&mut rx, "watched", case).await;
    assert_eq!(got.content, "v1", "{case}: changed content");
    store
        .delete(&s.query(&["watched"]))
        .await
        .unwrap_or_else(|e| panic!("{case}: delete failed: {e}"));
    let got = next_change(&mut rx, "watched", case).await;
    assert_eq!(
        got.content, "",
        "{case}: a deletion arrives with empty content"
    );
}

/// A subscriber of key A does not receive changes of key B.
pub async fn subscribe_other_key(store: &dyn ConfigStore) {
    let case = "configuration::subscribe_other_key";
    let s = Scope::new("subscribe-other");
    let mut rx = subscribe(store, &s.query(&["a"]), case).await;
    s.set(store, vec![s.item("b", "not for you")], case).await;
    s.set(store, vec![s.item("a", "for you")], case).await;
    // `next_change` fails on any item of key "b" arriving before the change of "a".
    let got = next_change(&mut rx, "a", case).await;
    assert_eq!(got.content, "for you", "{case}");
    s.set(store, vec![s.item("b", "still not for you")], case)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Ok(batch) = rx.try_recv() {
        assert!(
            batch.iter().all(|i| i.key == "a"),
            "{case}: got a change of another key: {batch:?}"
        );
    }
}
