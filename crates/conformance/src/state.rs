//! Suite of the [`StateStore`] contract: CRUD, bulk operations, ETags, TTL, transactions and
//! awkward values and keys.
//!
//! Transaction cases accept [`ErrorKind::Unsupported`] from `transact` (the contract allows a
//! store without transactions) and then check nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use layotto_core::state::{
    Concurrency, DeleteRequest, SetRequest, StateItem, StateOptions, StateStore, TTL_METADATA_KEY,
    TransactionOp,
};
use layotto_core::{ErrorKind, Metadata, Result};

use crate::unique;

/// Runs every case of this suite, each against a fresh component from `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StateStore>>,
{
    crud(&*factory().await).await;
    missing_key_is_none(&*factory().await).await;
    bulk(&*factory().await).await;
    etag_first_write(&*factory().await).await;
    etag_last_write(&*factory().await).await;
    stale_etag_on_update(&*factory().await).await;
    stale_etag_on_delete(&*factory().await).await;
    ttl_invalid(&*factory().await).await;
    transaction_in_order(&*factory().await).await;
    transaction_atomic(&*factory().await).await;
    large_value(&*factory().await).await;
    binary_values(&*factory().await).await;
    unicode_keys(&*factory().await).await;
    ttl_expiry(&*factory().await).await;
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

/// Set, read back (with an ETag), overwrite, delete, read back as absent.
pub async fn crud(store: &dyn StateStore) {
    let case = "state::crud";
    let k = unique("state-crud");
    set(store, set_req(&k, "v1"), case).await;
    let item = get(store, &k, case)
        .await
        .unwrap_or_else(|| panic!("{case}: written key is missing"));
    assert_eq!(item.data, Bytes::from("v1"), "{case}: value read back");
    assert!(item.etag.is_some(), "{case}: a stored item carries an etag");
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

/// First-write without ETag: inserting a new key succeeds, overwriting an existing one fails
/// with `EtagMismatch` and leaves the value; with the current ETag it succeeds.
pub async fn etag_first_write(store: &dyn StateStore) {
    let case = "state::etag_first_write";
    let k = unique("state-first-write");
    let first = |v: &'static str| SetRequest {
        options: StateOptions {
            concurrency: Concurrency::FirstWrite,
            ..Default::default()
        },
        ..set_req(&k, v)
    };
    set(store, first("v1"), case).await;
    expect_kind(
        store.set(first("v2")).await,
        ErrorKind::EtagMismatch,
        case,
        "first-write without etag on an existing key",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v1")),
        "{case}: value unchanged after the refused write"
    );
    let etag = etag_of(store, &k, case).await;
    set(
        store,
        SetRequest {
            etag: Some(etag),
            ..first("v3")
        },
        case,
    )
    .await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v3")),
        "{case}"
    );
}

/// Last-write ignores ETags, even a wrong one.
pub async fn etag_last_write(store: &dyn StateStore) {
    let case = "state::etag_last_write";
    let k = unique("state-last-write");
    set(store, set_req(&k, "v1"), case).await;
    let etag = etag_of(store, &k, case).await;
    let req = SetRequest {
        etag: Some(format!("{etag}-not-it")),
        options: StateOptions {
            concurrency: Concurrency::LastWrite,
            ..Default::default()
        },
        ..set_req(&k, "v2")
    };
    set(store, req, case).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}"
    );
    let del = DeleteRequest {
        etag: Some("bogus".into()),
        options: StateOptions {
            concurrency: Concurrency::LastWrite,
            ..Default::default()
        },
        ..del_req(&k)
    };
    store
        .delete(del)
        .await
        .unwrap_or_else(|e| panic!("{case}: last-write delete with a wrong etag failed: {e}"));
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted");
}

/// Writing with a stale ETag fails with `EtagMismatch` and leaves the value; the current ETag
/// works and changes the ETag.
pub async fn stale_etag_on_update(store: &dyn StateStore) {
    let case = "state::stale_etag_on_update";
    let k = unique("state-stale-update");
    set(store, set_req(&k, "v1"), case).await;
    let old = etag_of(store, &k, case).await;
    set(store, set_req(&k, "v2"), case).await;
    let current = etag_of(store, &k, case).await;
    assert_ne!(old, current, "{case}: a write changes the etag");
    expect_kind(
        store
            .set(SetRequest {
                etag: Some(old),
                ..set_req(&k, "v3")
            })
            .await,
        ErrorKind::EtagMismatch,
        case,
        "update with a stale etag",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: value unchanged"
    );
    set(
        store,
        SetRequest {
            etag: Some(current),
            ..set_req(&k, "v4")
        },
        case,
    )
    .await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v4")),
        "{case}"
    );
}

/// Deleting with a stale ETag fails with `EtagMismatch` and keeps the key; the current ETag
/// deletes it.
pub async fn stale_etag_on_delete(store: &dyn StateStore) {
    let case = "state::stale_etag_on_delete";
    let k = unique("state-stale-delete");
    set(store, set_req(&k, "v1"), case).await;
    let old = etag_of(store, &k, case).await;
    set(store, set_req(&k, "v2"), case).await;
    let current = etag_of(store, &k, case).await;
    expect_kind(
        store
            .delete(DeleteRequest {
                etag: Some(old),
                ..del_req(&k)
            })
            .await,
        ErrorKind::EtagMismatch,
        case,
        "delete with a stale etag",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: key kept"
    );
    store
        .delete(DeleteRequest {
            etag: Some(current),
            ..del_req(&k)
        })
        .await
        .unwrap_or_else(|e| panic!("{case}: delete with the current etag failed: {e}"));
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted");
}

/// `ttlInSeconds = 1`: readable at once, gone after ~2.2 s.
pub async fn ttl_expiry(store: &dyn StateStore) {
    let case = "state::ttl_expiry";
    let k = unique("state-ttl");
    let mut req = set_req(&k, "short-lived");
    req.metadata.insert(TTL_METADATA_KEY.into(), "1".into());
    set(store, req, case).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("short-lived")),
        "{case}: readable before expiry"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        get_data(store, &k, case).await,
        None,
        "{case}: expired after 2.2 s"
    );
}

/// `ttlInSeconds = "abc"` is `InvalidArgument` naming `ttlInSeconds`; nothing is written.
pub async fn ttl_invalid(store: &dyn StateStore) {
    let case = "state::ttl_invalid";
    let k = unique("state-ttl-bad");
    let mut req = set_req(&k, "v");
    req.metadata.insert(TTL_METADATA_KEY.into(), "abc".into());
    match store.set(req).await {
        Ok(()) => panic!("{case}: set with ttlInSeconds=abc succeeded"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{case}: {e:?}");
            assert!(
                e.message.contains(TTL_METADATA_KEY),
                "{case}: message does not name {TTL_METADATA_KEY}: {e}"
            );
        }
    }
    assert_eq!(
        get_data(store, &k, case).await,
        None,
        "{case}: nothing written"
    );
}

async fn transact(store: &dyn StateStore, ops: Vec<TransactionOp>) -> Option<Result<()>> {
    match store.transact(ops, &Metadata::new()).await {
        Err(e) if e.kind == ErrorKind::Unsupported => None,
        r => Some(r),
    }
}

/// Ops apply in order: upsert then delete of one key leaves it absent; delete then upsert
/// leaves it present.
pub async fn transaction_in_order(store: &dyn StateStore) {
    let case = "state::transaction_in_order";
    let a = unique("state-tx-a");
    let b = unique("state-tx-b");
    set(store, set_req(&b, "old"), case).await;
    let ops = vec![
        TransactionOp::Upsert(set_req(&a, "x")),
        TransactionOp::Delete(del_req(&a)),
        TransactionOp::Delete(del_req(&b)),
        TransactionOp::Upsert(set_req(&b, "new")),
    ];
    let Some(r) = transact(store, ops).await else {
        return;
    };
    r.unwrap_or_else(|e| panic!("{case}: transact failed: {e}"));
    assert_eq!(
        get_data(store, &a, case).await,
        None,
        "{case}: upsert then delete leaves the key absent"
    );
    assert_eq!(
        get_data(store, &b, case).await,
        Some(Bytes::from("new")),
        "{case}: delete then upsert leaves the new value"
    );
}

/// A stale ETag in the last op fails the transaction with `EtagMismatch` and applies nothing.
pub async fn transaction_atomic(store: &dyn StateStore) {
    let case = "state::transaction_atomic";
    let fresh = unique("state-txa-fresh");
    let kept = unique("state-txa-kept");
    let guarded = unique("state-txa-guarded");
    set(store, set_req(&kept, "kept"), case).await;
    set(store, set_req(&guarded, "g1"), case).await;
    let stale = etag_of(store, &guarded, case).await;
    set(store, set_req(&guarded, "g2"), case).await;
    let ops = vec![
        TransactionOp::Upsert(set_req(&fresh, "new")),
        TransactionOp::Delete(del_req(&kept)),
        TransactionOp::Upsert(SetRequest {
            etag: Some(stale),
            ..set_req(&guarded, "g3")
        }),
    ];
    let Some(r) = transact(store, ops).await else {
        return;
    };
    expect_kind(
        r,
        ErrorKind::EtagMismatch,
        case,
        "transaction with a stale etag",
    );
    assert_eq!(
        get_data(store, &fresh, case).await,
        None,
        "{case}: upsert not applied"
    );
    assert_eq!(
        get_data(store, &kept, case).await,
        Some(Bytes::from("kept")),
        "{case}: delete not applied"
    );
    assert_eq!(
        get_data(store, &guarded, case).await,
        Some(Bytes::from("g2")),
        "{case}: guarded key unchanged"
    );
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
