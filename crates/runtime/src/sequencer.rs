//! Sequencer: STRONG ids from the store, WEAK ids from in-process segments.

use layotto_core::Result;
use layotto_core::sequencer::Sequencer;

use crate::Runtime;

impl Runtime {
    /// The next id of `key`: from the store when `strong`, else from an in-process segment.
    ///
    /// # Errors
    /// Unknown store, empty or illegal key, component failure.
    pub async fn next_id(&self, store: &str, key: &str, strong: bool) -> Result<i64> {
        let s = self.components.target::<dyn Sequencer>(store)?;
        let k = s.key(key, "key")?;
        match s.segments() {
            Some(segments) if !strong => s.run("next_id", || segments.next_id(&k)).await,
            _ => s.run("get_next_id", || s.component.get_next_id(&k)).await,
        }
    }
}
