//! State: a key/value store with ETags, TTL and transactions.
//!
//! Semantics follow the Dapr state API (docs.dapr.io "State management overview"), which
//! Layotto's state API copies:
//! - an ETag given on a write or delete must match the stored one, else
//!   [`ErrorKind::EtagMismatch`], whatever the concurrency option ("the write operation succeeds
//!   only when the provided ETag matches", docs.dapr.io "State management overview"; Dapr's
//!   in-memory store does so). Last-write means "no check" only for a request without an ETag;
//! - with [`Concurrency::FirstWrite`] and no ETag, the write only succeeds if the key is absent;
//! - metadata `ttlInSeconds` (integer seconds, `-1` = never) sets an expiry on a write;
//! - a missing key reads as `None`, not an error.
//!
//! [`ErrorKind::EtagMismatch`]: crate::ErrorKind::EtagMismatch

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use async_trait::async_trait;
use bytes::Bytes;

use crate::component::Metadata;
use crate::error::{Error, Result};

/// Metadata key holding a time-to-live in seconds on a write.
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";

/// Metadata key on a read reply carrying the expiry time of the item (RFC 3339, UTC; see
/// [`rfc3339`]).
pub const TTL_EXPIRE_TIME_KEY: &str = "ttlExpireTime";

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2024-05-01T12:00:00Z` (the form
/// of [`TTL_EXPIRE_TIME_KEY`]). Times before 1970 are clamped to the epoch.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // d is in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Concurrency mode of a write or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// Not given: an ETag, if present, is checked.
    #[default]
    Unspecified,
    /// The first write wins: ETag checked, and without ETag only inserts succeed.
    FirstWrite,
    /// The last write wins: a request without ETag overwrites; one with an ETag is still
    /// checked.
    LastWrite,
}

/// Read/write consistency hint (stores may ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Not given.
    #[default]
    Unspecified,
    /// Eventual.
    Eventual,
    /// Strong.
    Strong,
}

/// Options carried by a write or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateOptions {
    /// Concurrency mode.
    pub concurrency: Concurrency,
    /// Consistency hint.
    pub consistency: Consistency,
}

/// A stored value as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateItem {
    /// The raw value.
    pub data: Bytes,
    /// Current version, opaque to clients.
    pub etag: Option<String>,
    /// Extra facts from the store, e.g. `ttlExpireTime` (RFC 3339).
    pub metadata: Metadata,
}

/// A write of one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetRequest {
    /// Key as stored (the runtime has already applied the key prefix).
    pub key: String,
    /// New value.
    pub value: Bytes,
    /// Expected current ETag, if any.
    pub etag: Option<String>,
    /// Request metadata, e.g. `ttlInSeconds`.
    pub metadata: Metadata,
    /// Concurrency and consistency.
    pub options: StateOptions,
}

/// A delete of one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    /// Key as stored.
    pub key: String,
    /// Expected current ETag, if any.
    pub etag: Option<String>,
    /// Request metadata.
    pub metadata: Metadata,
    /// Concurrency and consistency.
    pub options: StateOptions,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOp {
    /// Create or update.
    Upsert(SetRequest),
    /// Delete.
    Delete(DeleteRequest),
}

/// The result of reading one key in a bulk get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkGetItem {
    /// Key as stored.
    pub key: String,
    /// `Ok(None)` when missing; `Err` text when this key alone failed.
    pub item: std::result::Result<Option<StateItem>, String>,
}

impl TransactionOp {
    /// The key the operation writes or deletes.
    pub fn key(&self) -> &str {
        match self {
            Self::Upsert(r) => &r.key,
            Self::Delete(r) => &r.key,
        }
    }
}

impl SetRequest {
    /// Whether the ETag has to be checked for this write.
    pub fn etag_to_check(&self) -> Option<&str> {
        check_etag(self.etag.as_deref(), self.options.concurrency)
    }
}

impl DeleteRequest {
    /// Whether the ETag has to be checked for this delete.
    pub fn etag_to_check(&self) -> Option<&str> {
        check_etag(self.etag.as_deref(), self.options.concurrency)
    }
}

/// The ETag a request carries is checked under every concurrency option (see the module docs).
fn check_etag(etag: Option<&str>, _: Concurrency) -> Option<&str> {
    etag.filter(|e| !e.is_empty())
}

/// Parses `ttlInSeconds` from request metadata: `Ok(None)` when absent or `-1` (no expiry).
///
/// # Errors
/// [`crate::ErrorKind::InvalidArgument`] naming `ttlInSeconds` when the value is not an integer
/// or is below `-1`.
pub fn parse_ttl(metadata: &Metadata) -> Result<Option<std::time::Duration>> {
    let Some(raw) = metadata.get(TTL_METADATA_KEY) else {
        return Ok(None);
    };
    let secs: i64 = raw.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "metadata '{TTL_METADATA_KEY}' must be an integer number of seconds, got '{raw}'"
        ))
    })?;
    match secs {
        -1 => Ok(None),
        s if s < -1 => Err(Error::invalid(format!(
            "metadata '{TTL_METADATA_KEY}' must be -1 or >= 0, got {s}"
        ))),
        s => Ok(Some(std::time::Duration::from_secs(s.unsigned_abs()))),
    }
}

/// A state store component.
#[async_trait]
pub trait StateStore: Component {
    /// Reads `key`; `Ok(None)` if absent or expired.
    async fn get(&self, key: &str, metadata: &Metadata) -> Result<Option<StateItem>>;
    /// Reads many keys; a failure of one key is reported in its item.
    async fn bulk_get(&self, keys: &[String], metadata: &Metadata) -> Result<Vec<BulkGetItem>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let item = self.get(key, metadata).await.map_err(|e| e.message);
            out.push(BulkGetItem {
                key: key.clone(),
                item,
            });
        }
        Ok(out)
    }
    /// Writes one key (see the module docs for ETag and TTL rules).
    async fn set(&self, req: SetRequest) -> Result<()>;
    /// Deletes one key; deleting a missing key without ETag succeeds.
    async fn delete(&self, req: DeleteRequest) -> Result<()>;
    /// Writes many keys, each independently (not atomic).
    async fn bulk_set(&self, reqs: Vec<SetRequest>) -> Result<()> {
        for r in reqs {
            self.set(r).await?;
        }
        Ok(())
    }
    /// Deletes many keys, each independently (not atomic).
    async fn bulk_delete(&self, reqs: Vec<DeleteRequest>) -> Result<()> {
        for r in reqs {
            self.delete(r).await?;
        }
        Ok(())
    }
    /// Applies `ops` in order, all or nothing. Stores without transactions return
    /// [`crate::ErrorKind::Unsupported`].
    async fn transact(&self, ops: Vec<TransactionOp>, metadata: &Metadata) -> Result<()>;
    /// Runs a query over the JSON values stored under `query.key_prefix` (Dapr's
    /// `QUERY_API`): the matching items in sort order, then by key, one page. Stores without
    /// it (the default) return [`crate::ErrorKind::Unsupported`].
    async fn query(&self, _query: &crate::query::Query) -> Result<crate::query::QueryResponse> {
        Err(crate::Error::unsupported(
            "state store does not support querying",
        ))
    }
}

impl Contract for dyn StateStore {
    const KIND: Kind = Kind::State;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        let mut m = Metadata::new();
        assert_eq!(parse_ttl(&m).expect("absent"), None);
        m.insert(TTL_METADATA_KEY.into(), "-1".into());
        assert_eq!(parse_ttl(&m).expect("-1"), None);
        m.insert(TTL_METADATA_KEY.into(), "5".into());
        assert_eq!(
            parse_ttl(&m).expect("5"),
            Some(std::time::Duration::from_secs(5))
        );
        m.insert(TTL_METADATA_KEY.into(), "abc".into());
        assert!(parse_ttl(&m).is_err_and(|e| e.message.contains("ttlInSeconds")));
        m.insert(TTL_METADATA_KEY.into(), "-5".into());
        assert!(parse_ttl(&m).is_err());
    }

    #[test]
    fn formats_rfc3339() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn an_etag_is_checked_under_every_concurrency() {
        let mut r = SetRequest {
            etag: Some("3".into()),
            ..Default::default()
        };
        assert_eq!(r.etag_to_check(), Some("3"));
        r.options.concurrency = Concurrency::LastWrite;
        assert_eq!(r.etag_to_check(), Some("3"));
        r.etag = Some(String::new());
        assert_eq!(r.etag_to_check(), None, "an empty ETag is no ETag");
    }
}
