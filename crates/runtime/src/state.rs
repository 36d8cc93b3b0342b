//! State: keys pass through the component's key layout on the way in and out.

use layotto_core::state::{
    BulkGetItem, DeleteRequest, SetRequest, StateItem, StateStore, TransactionOp,
};
use layotto_core::{Metadata, Result};

use crate::Runtime;

impl Runtime {
    /// Reads `key` of `store`; `Ok(None)` when absent.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, component failure.
    pub async fn get_state(
        &self,
        store: &str,
        key: &str,
        metadata: &Metadata,
    ) -> Result<Option<StateItem>> {
        let s = self.components.target::<dyn StateStore>(store)?;
        let k = s.key(key, "key")?;
        s.run("get", || s.component.get(&k, metadata)).await
    }

    /// Reads many keys of `store`; items come back with the client's keys.
    ///
    /// # Errors
    /// Unknown store, an empty or illegal key, component failure.
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: &[String],
        metadata: &Metadata,
    ) -> Result<Vec<BulkGetItem>> {
        let s = self.components.target::<dyn StateStore>(store)?;
        let stored = keys
            .iter()
            .map(|k| s.key(k, "key"))
            .collect::<Result<Vec<_>>>()?;
        let mut items = s
            .run("bulk_get", || s.component.bulk_get(&stored, metadata))
            .await?;
        for it in &mut items {
            it.key = s.keys().strip(&it.key).to_owned();
        }
        Ok(items)
    }

    /// Writes `items` to `store` (keys as the client gave them).
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch, bad TTL, component failure.
    pub async fn save_state(&self, store: &str, mut items: Vec<SetRequest>) -> Result<()> {
        let s = self.components.target::<dyn StateStore>(store)?;
        for it in &mut items {
            it.key = s.key(&it.key, "key")?;
        }
        match items.len() {
            0 => Ok(()),
            1 => {
                let item = items.remove(0);
                s.run("set", || s.component.set(item.clone())).await
            }
            _ => {
                s.run("bulk_set", || s.component.bulk_set(items.clone()))
                    .await
            }
        }
    }

    /// Deletes keys of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch, component failure.
    pub async fn delete_state(&self, store: &str, mut reqs: Vec<DeleteRequest>) -> Result<()> {
        let s = self.components.target::<dyn StateStore>(store)?;
        for r in &mut reqs {
            r.key = s.key(&r.key, "key")?;
        }
        match reqs.len() {
            0 => Ok(()),
            1 => {
                let req = reqs.remove(0);
                s.run("delete", || s.component.delete(req.clone())).await
            }
            _ => {
                s.run("bulk_delete", || s.component.bulk_delete(reqs.clone()))
                    .await
            }
        }
    }

    /// Runs a query (Dapr's `QueryStateAlpha1`; the body as [`layotto_core::query::Query`]
    /// parses it) over the JSON values of `store` stored under this store's key layout prefix
    /// (`<appid>||` for Dapr components, so other apps' keys are not searched; an unprefixed
    /// layout, `keyPrefix: none`, searches every key), result keys in the client's form.
    ///
    /// # Errors
    /// Unknown store, a malformed query (invalid argument), a store without the query API
    /// (unsupported), component failure.
    pub async fn query_state(
        &self,
        store: &str,
        body: &[u8],
    ) -> Result<layotto_core::query::QueryResponse> {
        let s = self.components.target::<dyn StateStore>(store)?;
        let mut q = layotto_core::query::Query::parse(body)?;
        q.key_prefix = s.keys().stored_prefix();
        let mut r = s.run("query", || s.component.query(&q)).await?;
        for item in &mut r.results {
            item.key = s.keys().strip(&item.key).to_owned();
        }
        Ok(r)
    }

    /// Applies `ops` to `store` atomically, in order.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, ETag mismatch (nothing applied), component failure.
    pub async fn transact_state(
        &self,
        store: &str,
        mut ops: Vec<TransactionOp>,
        metadata: &Metadata,
    ) -> Result<()> {
        let s = self.components.target::<dyn StateStore>(store)?;
        for op in &mut ops {
            let key = match op {
                TransactionOp::Upsert(r) => &mut r.key,
                TransactionOp::Delete(r) => &mut r.key,
            };
            *key = s.key(key, "key")?;
        }
        s.run("transact", || s.component.transact(ops.clone(), metadata))
            .await
    }
}
