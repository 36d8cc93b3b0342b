//! Cases of `transact`: the `TRANSACTIONAL` feature (order, last-write, all-or-nothing) and
//! `Unsupported` for stores that do not claim it.

use bytes::Bytes;
use layotto_core::state::{DeleteRequest, SetRequest, StateStore, TransactionOp};
use layotto_core::{ErrorKind, Metadata, Result};

use super::{del_req, etag_of, expect_kind, get_data, last, last_del, set, set_req};
use crate::unique;

/// Fresh keys `<name>-{tag}` for one transaction, all with one hash tag so that a Redis
/// Cluster, which applies a transaction atomically only within one hash slot, can run it.
fn tx_keys<const N: usize>(names: [&str; N]) -> [String; N] {
    let tag = unique("tx");
    names.map(|n| format!("{n}-{{{tag}}}"))
}

async fn transact(store: &dyn StateStore, ops: Vec<TransactionOp>) -> Result<()> {
    store.transact(ops, &Metadata::new()).await
}

/// A store that does not claim `TRANSACTIONAL` answers `transact` with `Unsupported` and
/// applies nothing.
pub async fn transaction_unsupported(store: &dyn StateStore) {
    let case = "state::transaction_unsupported";
    let k = unique("state-tx-unsupported");
    expect_kind(
        transact(store, vec![TransactionOp::Upsert(set_req(&k, "x"))]).await,
        ErrorKind::Unsupported,
        case,
        "transact on a store that does not claim TRANSACTIONAL",
    );
    assert_eq!(
        get_data(store, &k, case).await,
        None,
        "{case}: nothing written"
    );
}

/// Ops apply in order: upsert then delete of one key leaves it absent; delete then upsert
/// leaves it present.
pub async fn transaction_in_order(store: &dyn StateStore) {
    let case = "state::transaction_in_order";
    let [a, b] = tx_keys(["state-tx-a", "state-tx-b"]);
    set(store, set_req(&b, "old"), case).await;
    let ops = vec![
        TransactionOp::Upsert(set_req(&a, "x")),
        TransactionOp::Delete(del_req(&a)),
        TransactionOp::Delete(del_req(&b)),
        TransactionOp::Upsert(set_req(&b, "new")),
    ];
    transact(store, ops)
        .await
        .unwrap_or_else(|e| panic!("{case}: transact failed: {e}"));
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
    let [fresh, kept, guarded] =
        tx_keys(["state-txa-fresh", "state-txa-kept", "state-txa-guarded"]);
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
    expect_kind(
        transact(store, ops).await,
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

/// Last-write ops without ETag in a transaction overwrite and delete existing keys.
pub async fn transaction_last_write_without_etag(store: &dyn StateStore) {
    let case = "state::transaction_last_write_without_etag";
    let [a, b] = tx_keys(["state-txlw-a", "state-txlw-b"]);
    set(store, set_req(&a, "a1"), case).await;
    set(store, set_req(&b, "b1"), case).await;
    let ops = vec![
        TransactionOp::Upsert(last(set_req(&a, "a2"))),
        TransactionOp::Delete(last_del(del_req(&b))),
    ];
    transact(store, ops)
        .await
        .unwrap_or_else(|e| panic!("{case}: transact failed: {e}"));
    assert_eq!(
        get_data(store, &a, case).await,
        Some(Bytes::from("a2")),
        "{case}: overwritten"
    );
    assert_eq!(get_data(store, &b, case).await, None, "{case}: deleted");
}

/// A last-write op with a wrong ETag fails the transaction with `EtagMismatch` and applies
/// nothing, for an upsert and for a delete.
pub async fn transaction_last_write_wrong_etag(store: &dyn StateStore) {
    let case = "state::transaction_last_write_wrong_etag";
    let [fresh, guarded] = tx_keys(["state-txlwe-fresh", "state-txlwe-guarded"]);
    set(store, set_req(&guarded, "g1"), case).await;
    let wrong = format!("{}-not-it", etag_of(store, &guarded, case).await);
    for (what, op) in [
        (
            "upsert",
            TransactionOp::Upsert(last(SetRequest {
                etag: Some(wrong.clone()),
                ..set_req(&guarded, "g2")
            })),
        ),
        (
            "delete",
            TransactionOp::Delete(last_del(DeleteRequest {
                etag: Some(wrong.clone()),
                ..del_req(&guarded)
            })),
        ),
    ] {
        let ops = vec![TransactionOp::Upsert(set_req(&fresh, "new")), op];
        expect_kind(
            transact(store, ops).await,
            ErrorKind::EtagMismatch,
            case,
            &format!("transaction with a last-write {what} carrying a wrong etag"),
        );
        assert_eq!(
            get_data(store, &fresh, case).await,
            None,
            "{case}: {what}: the other op was applied"
        );
        assert_eq!(
            get_data(store, &guarded, case).await,
            Some(Bytes::from("g1")),
            "{case}: {what}: guarded key changed"
        );
    }
}
