//! Suite of the [`Sequencer`] contract: increasing ids per key, uniqueness under concurrency,
//! segments, and the `biggerThan` floor ([`bigger_than`], run separately because it needs a
//! specially configured component).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use layotto_core::Feature;
use layotto_core::sequencer::{Segment, Sequencer};

use crate::run::SuiteRun;
use crate::unique;

/// The features this suite has cases for: none (Dapr defines no sequencer features); a
/// component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// Runs every case of this suite except [`bigger_than`], each against a fresh component from
/// `factory`.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Sequencer>>,
{
    let mut run = SuiteRun::start("sequencer", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("sequencer::increasing_per_key", async {
        increasing_per_key(&*f().await).await;
    })
    .await;
    run.case("sequencer::concurrent_unique", async {
        concurrent_unique(&*f().await).await;
    })
    .await;
    run.case("sequencer::segments", async {
        segments(&*f().await).await;
    })
    .await;
    run.finish();
}

async fn next(seq: &dyn Sequencer, key: &str, case: &str) -> i64 {
    seq.get_next_id(key)
        .await
        .unwrap_or_else(|e| panic!("{case}: get_next_id '{key}' failed: {e}"))
}

/// Ids of one key strictly increase; keys are independent (a second key also increases).
pub async fn increasing_per_key(seq: &dyn Sequencer) {
    let case = "sequencer::increasing_per_key";
    for k in [unique("seq-a"), unique("seq-b")] {
        let mut last = next(seq, &k, case).await;
        for _ in 0..20 {
            let id = next(seq, &k, case).await;
            assert!(id > last, "{case}: key '{k}': id {id} after {last}");
            last = id;
        }
    }
}

/// 8 concurrent callers x 200 ids of one key: all distinct, each caller's own ids increase.
pub async fn concurrent_unique(seq: &dyn Sequencer) {
    let case = "sequencer::concurrent_unique";
    let k = unique("seq-concurrent");
    let k = k.as_str();
    let callers = (0..8).map(|c| async move {
        let mut ids = Vec::with_capacity(200);
        for _ in 0..200 {
            let id = next(seq, k, case).await;
            if let Some(&last) = ids.last() {
                assert!(id > last, "{case}: caller {c}: id {id} after {last}");
            }
            ids.push(id);
            tokio::task::yield_now().await;
        }
        ids
    });
    let all: Vec<i64> = futures::future::join_all(callers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        1600,
        "{case}: {} distinct of 1600 ids",
        distinct.len()
    );
}

/// Segments (when supported) have the asked size, are disjoint, and never contain an id
/// handed out by `get_next_id` before or after them.
pub async fn segments(seq: &dyn Sequencer) {
    let case = "sequencer::segments";
    let k = unique("seq-segment");
    let before = next(seq, &k, case).await;
    let mut segs: Vec<Segment> = Vec::new();
    for _ in 0..3 {
        let seg = seq
            .get_segment(&k, 10)
            .await
            .unwrap_or_else(|e| panic!("{case}: get_segment failed: {e}"));
        let Some(seg) = seg else {
            return;
        };
        assert_eq!(
            seg.to - seg.from + 1,
            10,
            "{case}: segment {seg:?} has not 10 ids"
        );
        for s in &segs {
            assert!(
                seg.to < s.from || seg.from > s.to,
                "{case}: segments {s:?} and {seg:?} overlap"
            );
        }
        segs.push(seg);
    }
    let after = next(seq, &k, case).await;
    for id in [before, after] {
        for s in &segs {
            assert!(
                !(s.from..=s.to).contains(&id),
                "{case}: get_next_id gave {id}, inside segment {s:?}"
            );
        }
    }
    assert!(after > before, "{case}: id {after} after {before}");
}

/// `biggerThan`: `factory(key, 1000)` must build a ready sequencer whose floor for `key` is
/// 1000; its first id for `key` must be greater than 1000.
pub async fn bigger_than<F, Fut>(factory: F)
where
    F: FnOnce(String, i64) -> Fut,
    Fut: Future<Output = Arc<dyn Sequencer>>,
{
    let case = "sequencer::bigger_than";
    let k = unique("seq-floor");
    let seq = factory(k.clone(), 1000).await;
    let first = next(&*seq, &k, case).await;
    assert!(
        first > 1000,
        "{case}: first id {first} is not above the floor 1000"
    );
    let second = next(&*seq, &k, case).await;
    assert!(second > first, "{case}: id {second} after {first}");
}
