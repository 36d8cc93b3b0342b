//! In-memory sequencer: per-key counters with `biggerThan` floors.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use layotto_core::metadata::decode;
use layotto_core::sequencer::{Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Result};

use crate::lock;

/// Metadata of [`MemorySequencer`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemorySequencerMetadata {
    /// `biggerThan`: a JSON object key -> integer; every id of a key is greater than its value.
    pub bigger_than: Option<String>,
}

impl ComponentMetadata for MemorySequencerMetadata {}

/// Sequencer kept in process memory (type `in-memory`). Ids start at 1 (or just above the key's
/// `biggerThan` floor) and never repeat while the process lives.
#[derive(Debug)]
pub struct MemorySequencer {
    name: String,
    floors: HashMap<String, i64>,
    counters: Mutex<HashMap<String, i64>>,
}

impl MemorySequencer {
    /// A sequencer named `name` whose ids for each key of `floors` are greater than its value.
    pub fn new(name: impl Into<String>, floors: HashMap<String, i64>) -> Self {
        Self {
            name: name.into(),
            floors,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Factory: [`MemorySequencerMetadata`] (`biggerThan`, a JSON object key -> integer).
    ///
    /// # Errors
    /// Invalid argument naming `biggerThan` when it is not such an object.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: MemorySequencerMetadata = decode(spec)?;
        let floors = parse_bigger_than(meta.bigger_than.as_deref())
            .map_err(|e| e.context(format_args!("sequencer '{}'", spec.name)))?;
        Ok(Self::new(spec.name.clone(), floors))
    }

    /// Reserves `size` ids for `key` and returns the last one.
    fn advance(&self, key: &str, size: u32) -> Result<(i64, i64)> {
        if key.is_empty() {
            return Err(
                Error::empty_field("key").context(format_args!("sequencer '{}'", self.name))
            );
        }
        let mut counters = lock(&self.counters);
        let current = counters.get(key).copied().unwrap_or(0);
        let floor = self.floors.get(key).copied().unwrap_or(0);
        let base = current.max(floor);
        let overflow = || {
            Error::internal(format!(
                "sequencer '{}': ids of key '{key}' are exhausted",
                self.name
            ))
        };
        let from = base.checked_add(1).ok_or_else(overflow)?;
        let to = base.checked_add(i64::from(size)).ok_or_else(overflow)?;
        counters.insert(key.to_owned(), to);
        Ok((from, to))
    }
}

impl Component for MemorySequencer {}

#[async_trait]
impl Sequencer for MemorySequencer {
    /// The next id of `key`. Errors: invalid argument for an empty key, internal when the ids
    /// of the key are exhausted.
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        self.advance(key, 1).map(|(_, to)| to)
    }

    /// Reserves `size` ids of `key`: `Some(from..=to)`. Errors: invalid argument for an empty
    /// key or `size` 0, internal when exhausted.
    async fn get_segment(&self, key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Err(Error::invalid(format!(
                "sequencer '{}': segment size must be greater than 0",
                self.name
            )));
        }
        let (from, to) = self.advance(key, size)?;
        Ok(Some(Segment { from, to }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use layotto_core::sequencer::BIGGER_THAN_KEY;

    use super::*;

    #[tokio::test]
    async fn floors_and_segments() {
        let spec = ComponentSpec::new("q", "in-memory").with(BIGGER_THAN_KEY, r#"{"order": 1000}"#);
        let s = MemorySequencer::from_spec(&spec).expect("valid");
        assert_eq!(s.get_next_id("order").await.expect("id"), 1001);
        assert_eq!(s.get_next_id("order").await.expect("id"), 1002);
        assert_eq!(s.get_next_id("other").await.expect("id"), 1);
        let seg = s
            .get_segment("order", 10)
            .await
            .expect("seg")
            .expect("some");
        assert_eq!(
            seg,
            Segment {
                from: 1003,
                to: 1012
            }
        );
        assert_eq!(s.get_next_id("order").await.expect("id"), 1013);
        let e = s.get_segment("order", 0).await.expect_err("size 0");
        assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument);
    }

    #[test]
    fn bad_floor_fails_at_config_time() {
        let spec = ComponentSpec::new("q", "in-memory").with(BIGGER_THAN_KEY, "{\"a\": \"x\"}");
        let e = MemorySequencer::from_spec(&spec).expect_err("bad");
        assert!(e.message.contains(BIGGER_THAN_KEY), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ids_are_unique() {
        let s = Arc::new(MemorySequencer::new("q", HashMap::new()));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..200 {
                    if i % 10 == 0 {
                        let seg = s.get_segment("k", 5).await.expect("seg").expect("some");
                        ids.extend(seg.from..=seg.to);
                    } else {
                        ids.push(s.get_next_id("k").await.expect("id"));
                    }
                }
                ids
            }));
        }
        let mut all = HashSet::new();
        let mut count = 0;
        for t in tasks {
            for id in t.await.expect("task") {
                count += 1;
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), count);
        assert_eq!(
            all.iter().max().copied(),
            Some(i64::try_from(count).expect("fits"))
        );
    }
}
