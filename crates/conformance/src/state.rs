//! Suite of the [`StateStore`] contract.
//!
//! Base cases, run for every store: [`crud`], [`missing_key_is_none`], [`bulk`],
//! [`first_write`] and [`last_write_without_etag`] (concurrency options without ETags),
//! [`large_value`], [`binary_values`], [`unicode_keys`]; and, for a store that does not claim
//! `TRANSACTIONAL`, [`transaction_unsupported`].
//!
//! Feature cases ([`FEATURES`]), run when the store claims the feature, skipped (and named on
//! standard output) otherwise:
//! - `ETAG`: [`etag_first_write`], [`etag_last_write`], [`stale_etag_on_update`],
//!   [`stale_etag_on_delete`], [`etag_on_missing_key`]. An ETag a request carries is checked
//!   under every concurrency option, last-write included ("the write operation succeeds only
//!   when the provided ETag matches", docs.dapr.io "State management overview");
//! - `TRANSACTIONAL`: [`transaction_in_order`], [`transaction_last_write_without_etag`]; with
//!   `ETAG` as well, [`transaction_atomic`] and [`transaction_last_write_wrong_etag`];
//! - `TTL`: [`ttl_invalid`], [`ttl_never`], [`ttl_expiry`];
//! - `QUERY_API`: [`query`].
//!
//! The other state features (`DELETE_WITH_PREFIX`, `PARTITION_KEY`) have no cases (the
//! contract has no operations for them yet): a store claiming one fails the suite.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateOptions, StateStore,
};
use layotto_core::{ErrorKind, Feature, Metadata, Result};

use crate::run::SuiteRun;
use crate::unique;

mod etag;
mod query;
mod transaction;
mod ttl;

pub use etag::{
    etag_first_write, etag_last_write, etag_on_missing_key, stale_etag_on_delete,
    stale_etag_on_update,
};
pub use query::query;
pub use transaction::{
    transaction_atomic, transaction_in_order, transaction_last_write_without_etag,
    transaction_last_write_wrong_etag, transaction_unsupported,
};
pub use ttl::{ttl_expiry, ttl_invalid, ttl_never};

/// The features this suite has cases for (the module docs list the cases of each).
pub const FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::QueryApi,
];

/// Runs the base cases and the cases of every feature the store claims, each against a fresh
/// component from `factory`; prints each skipped case.
///
/// # Panics
/// When a case fails (its message, then the claims and the passed and skipped cases), or when
/// the store claims a feature this suite has no cases for.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StateStore>>,
{
    use Feature::{Etag, Transactional as Tx, Ttl};
    let mut run = SuiteRun::start("state", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("state::crud", async { crud(&*f().await).await })
        .await;
    run.case("state::missing_key_is_none", async {
        missing_key_is_none(&*f().await).await;
    })
    .await;
    run.case("state::bulk", async { bulk(&*f().await).await })
        .await;
    run.case("state::first_write", async {
        first_write(&*f().await).await;
    })
    .await;
    run.case("state::last_write_without_etag", async {
        last_write_without_etag(&*f().await).await;
    })
    .await;
    run.case("state::large_value", async {
        large_value(&*f().await).await;
    })
    .await;
    run.case("state::binary_values", async {
        binary_values(&*f().await).await;
    })
    .await;
    run.case("state::unicode_keys", async {
        unicode_keys(&*f().await).await;
    })
    .await;
    run.unclaimed_case(Tx, "state::transaction_unsupported", async {
        transaction_unsupported(&*f().await).await;
    })
    .await;

    run.feature_case(&[Etag], "state::etag_first_write", async {
        etag_first_write(&*f().await).await;
    })
    .await;
    run.feature_case(&[Etag], "state::etag_last_write", async {
        etag_last_write(&*f().await).await;
    })
    .await;
    run.feature_case(&[Etag], "state::stale_etag_on_update", async {
        stale_etag_on_update(&*f().await).await;
    })
    .await;
    run.feature_case(&[Etag], "state::stale_etag_on_delete", async {
        stale_etag_on_delete(&*f().await).await;
    })
    .await;
    run.feature_case(&[Etag], "state::etag_on_missing_key", async {
        etag_on_missing_key(&*f().await).await;
    })
    .await;

    run.feature_case(&[Tx], "state::transaction_in_order", async {
        transaction_in_order(&*f().await).await;
    })
    .await;
    run.feature_case(&[Tx], "state::transaction_last_write_without_etag", async {
        transaction_last_write_without_etag(&*f().await).await;
    })
    .await;
    run.feature_case(&[Tx, Etag], "state::transaction_atomic", async {
        transaction_atomic(&*f().await).await;
    })
    .await;
    run.feature_case(
        &[Tx, Etag],
        "state::transaction_last_write_wrong_etag",
        async {
            transaction_last_write_wrong_etag(&*f().await).await;
        },
    )
    .await;

    run.feature_case(&[Ttl], "state::ttl_invalid", async {
        ttl_invalid(&*f().await).await;
    })
    .await;
    run.feature_case(&[Ttl], "state::ttl_never", async {
        ttl_never(&*f().await).await;
    })
    .await;
    run.feature_case(&[Ttl], "state::ttl_expiry", async {
        ttl_expiry(&*f().await).await;
    })
    .await;
    run.feature_case(&[Feature::QueryApi], "state::query", async {
        query(&*f().await).await;
    })
    .await;
    run.finish();
}

fn set_req(key: &str, value: impl Into<Bytes>) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: value.into(),
        ..Default::default()
    }
}

fn del_req(key: &str) -> DeleteRequest {
    DeleteRequest {
        key: key.to_owned(),
        ..Default::default()
    }
}

async fn get(store: &dyn StateStore, key: &str, case: &str) -> Option<StateItem> {
    store
        .get(key, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: get '{key}' failed: {e}"))
}

async fn get_data(store: &dyn StateStore, key: &str, case: &str) -> Option<Bytes> {
    get(store, key, case).await.map(|i| i.data)
}

async fn set(store: &dyn StateStore, req: SetRequest, case: &str) {
    let key = req.key.clone();
    store
        .set(req)
        .await
        .unwrap_or_else(|e| panic!("{case}: set '{key}' failed: {e}"));
}

async fn etag_of(store: &dyn StateStore, key: &str, case: &str) -> String {
    get(store, key, case)
        .await
        .unwrap_or_else(|| panic!("{case}: key '{key}' is missing"))
        .etag
        .unwrap_or_else(|| panic!("{case}: key '{key}' has no etag"))
}

fn expect_kind(r: Result<()>, kind: ErrorKind, case: &str, what: &str) {
    match r {
        Ok(()) => panic!("{case}: {what} succeeded, expected {kind:?}"),
        Err(e) => assert_eq!(
            e.kind, kind,
            "{case}: {what} failed with {e:?}, expected {kind:?}"
        ),
    }
}

/// Set, read back, overwrite, delete, read back as absent; deleting a missing key succeeds.
pub async fn crud(store: &dyn StateStore) {
    let case = "state::crud";
    let k = unique("state-crud");
    set(store, set_req(&k, "v1"), case).await;
    let item = get(store, &k, case)
        .await
        .unwrap_or_else(|| panic!("{case}: written key is missing"));
    assert_eq!(item.data, Bytes::from("v1"), "{case}: value read back");
    set(store, set_req(&k, "v2"), case).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: overwritten value"
    );
    store
        .delete(del_req(&k))
        .await
        .unwrap_or_else(|e| panic!("{case}: delete failed: {e}"));
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted key");
    store
        .delete(del_req(&k))
        .await
        .unwrap_or_else(|e| panic!("{case}: deleting a missing key without etag failed: {e}"));
}

/// A key never written reads as `None`, not an error.
pub async fn missing_key_is_none(store: &dyn StateStore) {
    let case = "state::missing_key_is_none";
    let k = unique("state-missing");
    assert_eq!(get(store, &k, case).await, None, "{case}");
}

/// Bulk set, bulk get (with one missing key), bulk delete.
pub async fn bulk(store: &dyn StateStore) {
    let case = "state::bulk";
    let keys: Vec<String> = (0..5).map(|i| unique(&format!("state-bulk{i}"))).collect();
    let reqs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| set_req(k, format!("value-{i}")))
        .collect();
    store
        .bulk_set(reqs)
        .await
        .unwrap_or_else(|e| panic!("{case}: bulk_set failed: {e}"));
    let missing = unique("state-bulk-missing");
    let mut asked = keys.clone();
    asked.push(missing.clone());
    let got = store
        .bulk_get(&asked, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: bulk_get failed: {e}"));
    assert_eq!(got.len(), asked.len(), "{case}: one result per key");
    for (i, k) in keys.iter().enumerate() {
        let item = got
            .iter()
            .find(|g| &g.key == k)
            .unwrap_or_else(|| panic!("{case}: no bulk_get result for '{k}'"));
        let data = item
            .item
            .clone()
            .unwrap_or_else(|e| panic!("{case}: bulk_get of '{k}' failed: {e}"))
            .map(|i| i.data);
        assert_eq!(
            data,
            Some(Bytes::from(format!("value-{i}"))),
            "{case}: '{k}'"
        );
    }
    let m = got
        .iter()
        .find(|g| g.key == missing)
        .unwrap_or_else(|| panic!("{case}: no bulk_get result for the missing key"));
    assert_eq!(m.item, Ok(None), "{case}: missing key in bulk_get");
    store
        .bulk_delete(keys.iter().map(|k| del_req(k)).collect())
        .await
        .unwrap_or_else(|e| panic!("{case}: bulk_delete failed: {e}"));
    for k in &keys {
        assert_eq!(
            get_data(store, k, case).await,
            None,
            "{case}: '{k}' deleted"
        );
    }
}

fn first(req: SetRequest) -> SetRequest {
    SetRequest {
        options: StateOptions {
            concurrency: Concurrency::FirstWrite,
            ..Default::default()
        },
        ..req
    }
}

fn last(req: SetRequest) -> SetRequest {
    SetRequest {
        options: StateOptions {
            concurrency: Concurrency::LastWrite,
            ..Default::default()
        },
        ..req
    }
}

fn last_del(req: DeleteRequest) -> DeleteRequest {
    DeleteRequest {
        options: StateOptions {
            concurrency: Concurrency::LastWrite,
            ..Default::default()
        },
        ..req
    }
}

async fn delete(store: &dyn StateStore, req: DeleteRequest, case: &str, what: &str) {
    store
        .delete(req)
        .await
        .unwrap_or_else(|e| panic!("{case}: {what} failed: {e}"));
}

/// First-write without ETag: inserting a new key succeeds, overwriting an existing one fails
/// with `EtagMismatch` and leaves the value.
pub async fn first_write(store: &dyn StateStore) {
    let case = "state::first_write";
    let k = unique("state-first-write");
    set(store, first(set_req(&k, "v1")), case).await;
    expect_kind(
        store.set(first(set_req(&k, "v2"))).await,
        ErrorKind::EtagMismatch,
        case,
        "first-write without etag on an existing key",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v1")),
        "{case}: value unchanged after the refused write"
    );
}

/// Last-write without ETag overwrites an existing key and deletes it.
pub async fn last_write_without_etag(store: &dyn StateStore) {
    let case = "state::last_write_without_etag";
    let k = unique("state-last-write-no-etag");
    set(store, last(set_req(&k, "v1")), case).await;
    set(store, last(set_req(&k, "v2")), case).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: last-write without etag overwrites"
    );
    delete(
        store,
        last_del(del_req(&k)),
        case,
        "last-write delete without etag",
    )
    .await;
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted");
}

/// A 1 MiB value round-trips.
pub async fn large_value(store: &dyn StateStore) {
    let case = "state::large_value";
    let k = unique("state-large");
    let value: Bytes = (0..1024 * 1024u32)
        .map(|i| b'a' + u8::try_from(i % 26).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into();
    set(store, set_req(&k, value.clone()), case).await;
    let got = get_data(store, &k, case)
        .await
        .unwrap_or_else(|| panic!("{case}: missing"));
    assert!(
        got == value,
        "{case}: 1 MiB value differs ({} bytes back)",
        got.len()
    );
}

/// A value holding every byte value 0..=255 (twice, both orders) round-trips.
pub async fn binary_values(store: &dyn StateStore) {
    let case = "state::binary_values";
    let k = unique("state-binary");
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend((0..=255u8).rev());
    let value = Bytes::from(v);
    set(store, set_req(&k, value.clone()), case).await;
    assert_eq!(get_data(store, &k, case).await, Some(value), "{case}");
}

/// Unicode keys round-trip and do not collide with their ASCII neighbours.
pub async fn unicode_keys(store: &dyn StateStore) {
    let case = "state::unicode_keys";
    let k = format!("{}-ключ-键-🔑", unique("state-unicode"));
    set(store, set_req(&k, "unicode"), case).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("unicode")),
        "{case}"
    );
    let ascii = k.replace("ключ-键-🔑", "key");
    assert_eq!(
        get_data(store, &ascii, case).await,
        None,
        "{case}: no collision"
    );
    store
        .delete(del_req(&k))
        .await
        .unwrap_or_else(|e| panic!("{case}: delete failed: {e}"));
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted");
}
