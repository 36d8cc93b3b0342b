//! In-process id segments for WEAK sequencer requests.
//!
//! A WEAK `GetNextId` is served from a block of ids reserved in the store
//! ([`Sequencer::get_segment`]). When a fifth of the block is left, the next block is reserved in
//! the background, so callers rarely wait on the store. Ids handed out by one sidecar for a key
//! are unique and increasing; across sidecars they are unique (each block is reserved once).
//! Stores that cannot reserve blocks fall back to one store call per id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use layotto_core::sequencer::{Segment, Sequencer};
use layotto_core::{Error, Result};
use tokio::task::JoinHandle;

/// Default number of ids reserved per segment.
pub const DEFAULT_SEGMENT_SIZE: u32 = 1000;

#[derive(Default)]
struct KeyState {
    /// Next id to hand out and the last id of the current block.
    current: Option<(i64, i64)>,
    /// A reservation in flight.
    refill: Option<JoinHandle<Result<Option<Segment>>>>,
    /// Set when the store said it cannot reserve blocks.
    unsupported: bool,
}

/// Segments of every key of one sequencer component.
pub struct SegmentCache {
    seq: Arc<dyn Sequencer>,
    size: u32,
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<KeyState>>>>,
}

impl SegmentCache {
    /// A cache over `seq` reserving `size` ids per block.
    pub fn new(seq: Arc<dyn Sequencer>, size: u32) -> Self {
        Self {
            seq,
            size: size.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn key_state(&self, key: &str) -> Arc<tokio::sync::Mutex<KeyState>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.entry(key.to_owned()).or_default().clone()
    }

    fn spawn_refill(&self, key: &str) -> JoinHandle<Result<Option<Segment>>> {
        let seq = self.seq.clone();
        let key = key.to_owned();
        let size = self.size;
        tokio::spawn(async move { seq.get_segment(&key, size).await })
    }

    /// The next id of `key` (already prefixed).
    ///
    /// # Errors
    /// The store's error when a block has to be reserved and the store fails.
    pub async fn next_id(&self, key: &str) -> Result<i64> {
        let state = self.key_state(key);
        let mut st = state.lock().await;
        if st.unsupported {
            drop(st);
            return self.seq.get_next_id(key).await;
        }
        loop {
            if let Some((next, to)) = st.current
                && next <= to
            {
                st.current = Some((next + 1, to));
                let left = to - next;
                if left <= i64::from(self.size / 5) && st.refill.is_none() {
                    st.refill = Some(self.spawn_refill(key));
                }
                return Ok(next);
            }
            // Current block exhausted: take the reservation in flight, or make one.
            let reserved = match st.refill.take() {
                Some(handle) => match handle.await {
                    Ok(Ok(seg)) => seg,
                    Ok(Err(e)) => {
                        tracing::warn!(key, error = %e, "background segment reservation failed; retrying inline");
                        self.seq.get_segment(key, self.size).await?
                    }
                    Err(e) => {
                        return Err(Error::internal(format!(
                            "segment reservation task failed: {e}"
                        )));
                    }
                },
                None => self.seq.get_segment(key, self.size).await?,
            };
            match reserved {
                Some(seg) if seg.from <= seg.to => st.current = Some((seg.from, seg.to)),
                Some(seg) => {
                    return Err(Error::internal(format!(
                        "sequencer returned an empty segment {}..={}",
                        seg.from, seg.to
                    )));
                }
                None => {
                    st.unsupported = true;
                    drop(st);
                    return self.seq.get_next_id(key).await;
                }
            }
        }
    }
}
