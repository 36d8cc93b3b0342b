//! Cases of the `ETAG` feature: ETags on reads, stale and wrong ETags refused under every
//! concurrency option, ETags on missing keys.

use bytes::Bytes;
use layotto_core::ErrorKind;
use layotto_core::state::{DeleteRequest, SetRequest, StateStore};

use super::{
    del_req, delete, etag_of, expect_kind, first, get, get_data, last, last_del, set, set_req,
};
use crate::unique;

/// First-write with the current ETag overwrites; with a stale one it fails with
/// `EtagMismatch` and leaves the value.
pub async fn etag_first_write(store: &dyn StateStore) {
    let case = "state::etag_first_write";
    let k = unique("state-etag-first-write");
    set(store, first(set_req(&k, "v1")), case).await;
    let stale = etag_of(store, &k, case).await;
    set(
        store,
        first(SetRequest {
            etag: Some(stale.clone()),
            ..set_req(&k, "v2")
        }),
        case,
    )
    .await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: first-write with the current etag"
    );
    expect_kind(
        store
            .set(first(SetRequest {
                etag: Some(stale),
                ..set_req(&k, "v3")
            }))
            .await,
        ErrorKind::EtagMismatch,
        case,
        "first-write with a stale etag",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v2")),
        "{case}: value unchanged after the refused write"
    );
}

/// Last-write checks an ETag it is given: a wrong ETag on a write or a delete fails with
/// `EtagMismatch` and changes nothing; the current ETag writes and deletes.
pub async fn etag_last_write(store: &dyn StateStore) {
    let case = "state::etag_last_write";
    let k = unique("state-last-write");
    set(store, set_req(&k, "v1"), case).await;
    let etag = etag_of(store, &k, case).await;
    expect_kind(
        store
            .set(last(SetRequest {
                etag: Some(format!("{etag}-not-it")),
                ..set_req(&k, "v2")
            }))
            .await,
        ErrorKind::EtagMismatch,
        case,
        "last-write with a wrong etag",
    );
    let after = get(store, &k, case)
        .await
        .unwrap_or_else(|| panic!("{case}: key vanished after a refused write"));
    assert_eq!(after.data, Bytes::from("v1"), "{case}: value unchanged");
    assert_eq!(
        after.etag.as_deref(),
        Some(etag.as_str()),
        "{case}: etag unchanged after a refused write"
    );
    expect_kind(
        store
            .delete(last_del(DeleteRequest {
                etag: Some("bogus".into()),
                ..del_req(&k)
            }))
            .await,
        ErrorKind::EtagMismatch,
        case,
        "last-write delete with a wrong etag",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v1")),
        "{case}: key kept after a refused delete"
    );
    set(
        store,
        last(SetRequest {
            etag: Some(etag),
            ..set_req(&k, "v3")
        }),
        case,
    )
    .await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("v3")),
        "{case}: last-write with the current etag"
    );
    let current = etag_of(store, &k, case).await;
    delete(
        store,
        last_del(DeleteRequest {
            etag: Some(current),
            ..del_req(&k)
        }),
        case,
        "last-write delete with the current etag",
    )
    .await;
    assert_eq!(get_data(store, &k, case).await, None, "{case}: deleted");
}

/// An ETag given for a key that does not exist fails with `EtagMismatch` on a write and on a
/// delete, and creates nothing.
pub async fn etag_on_missing_key(store: &dyn StateStore) {
    let case = "state::etag_on_missing_key";
    let k = unique("state-etag-missing");
    let other = unique("state-etag-missing-source");
    set(store, set_req(&other, "x"), case).await;
    let etag = etag_of(store, &other, case).await;
    expect_kind(
        store
            .set(SetRequest {
                etag: Some(etag.clone()),
                ..set_req(&k, "v")
            })
            .await,
        ErrorKind::EtagMismatch,
        case,
        "write with an etag to a missing key",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        None,
        "{case}: nothing created"
    );
    expect_kind(
        store
            .delete(DeleteRequest {
                etag: Some(etag),
                ..del_req(&k)
            })
            .await,
        ErrorKind::EtagMismatch,
        case,
        "delete with an etag of a missing key",
    );
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
