//! Sequencer: unique, increasing 64-bit ids per key.
//!
//! Follows `mosn/layotto:components/sequencer/types.go`: `get_next_id` serves STRONG requests
//! (each id from the store); `get_segment` reserves a block of ids that the runtime hands out in
//! process for WEAK requests. `biggerThan` (per key) is a floor: every id is greater than it.

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::Result;

/// Component metadata key of the per-key floors, a JSON object `{"key": n}`; Layotto's
/// `sequencer.<name>.biggerThan`.
pub const BIGGER_THAN_KEY: &str = "biggerThan";

/// A reserved block of ids, both ends inclusive: `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First id of the block.
    pub from: i64,
    /// Last id of the block.
    pub to: i64,
}

/// A sequencer component. Keys arrive already prefixed by the runtime.
#[async_trait]
pub trait Sequencer: Component {
    /// The next id for `key`, greater than every id handed out before for it.
    async fn get_next_id(&self, key: &str) -> Result<i64>;
    /// Reserves `size` consecutive ids for `key`; `Ok(None)` if the store cannot.
    async fn get_segment(&self, key: &str, size: u32) -> Result<Option<Segment>>;
}

impl Contract for dyn Sequencer {
    const KIND: Kind = Kind::Sequencer;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}

/// Parses the `biggerThan` metadata value (JSON object of key -> integer).
///
/// # Errors
/// Invalid argument naming `biggerThan` when the text is no such object.
pub fn parse_bigger_than(raw: Option<&str>) -> Result<HashMap<String, i64>> {
    match raw {
        None => Ok(HashMap::new()),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            crate::Error::invalid(format!(
                "metadata '{BIGGER_THAN_KEY}' must be an object of key -> integer: {e}"
            ))
        }),
    }
}
