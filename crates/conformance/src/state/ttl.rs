//! Cases of the `TTL` feature: `ttlInSeconds` expiry, `-1`, invalid values.

use std::time::Duration;

use bytes::Bytes;
use layotto_core::ErrorKind;
use layotto_core::state::{StateStore, TTL_METADATA_KEY};

use super::{get_data, set, set_req};
use crate::unique;

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
        "{case}: still readable 2.2 s after a write with ttlInSeconds=1"
    );
}

/// `ttlInSeconds = -1` never expires, and a write with it replaces an earlier TTL of the key.
pub async fn ttl_never(store: &dyn StateStore) {
    let case = "state::ttl_never";
    let k = unique("state-ttl-never");
    let mut req = set_req(&k, "short");
    req.metadata.insert(TTL_METADATA_KEY.into(), "1".into());
    set(store, req, case).await;
    let mut req = set_req(&k, "forever");
    req.metadata.insert(TTL_METADATA_KEY.into(), "-1".into());
    set(store, req, case).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        get_data(store, &k, case).await,
        Some(Bytes::from("forever")),
        "{case}: a key written with ttlInSeconds=-1 expired"
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
