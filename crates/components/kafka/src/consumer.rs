//! One member of a Kafka consumer group, shared by the pub/sub and the input binding.
//!
//! **At least once.** Offsets are stored only after the handler acknowledged a record
//! (`enable.auto.offset.store=false`) and committed every second and when partitions are
//! revoked or the member leaves (`enable.auto.commit`), so a record that was not acknowledged
//! is delivered again to whoever owns its partition next.
//!
//! **Order.** A member hands records to its handler one at a time, in partition order (for a
//! bulk subscription, up to `maxBulkSubCount` at once, their offsets stored once all of them
//! are handled). While
//! the handler runs, the member keeps polling the group (so rebalances and heartbeats go on
//! while an app is slow); records that arrive meanwhile wait their turn, and once 500 wait
//! the member pauses its partitions until they are handled. A failed delivery is retried in place (after [`retry_delay`] or
//! `consumeRetryInterval`), blocking its partition as Dapr's does; with retries off it is
//! skipped, as Dapr skips it.
//!
//! **Where a new group starts.** When the group first gets a partition that has no committed
//! offset, the member commits the partition's end (`initialOffset: newest`) or start
//! (`oldest`) before consuming it, so a record published after the group first subscribed is
//! never skipped because the partition later moved to another member. (With Kafka's own
//! `auto.offset.reset=latest`, a partition that moves before its first commit restarts at the
//! then end, and what was published meanwhile is lost.)
//!
//! The first assignment is awaited before `subscribe` returns, so a record published after
//! that is delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use layotto_core::pubsub::retry_delay;
use layotto_core::{Error, Result};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message as _, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{InitialOffset, KafkaSettings};

/// Handles one record: `Ok` acknowledges it.
pub type RecordHandler = Arc<dyn Fn(OwnedMessage) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// How long a broker request made during a rebalance may take.
const REBALANCE_CALL: Duration = Duration::from_secs(5);
/// Records kept while one is being handled before the member pauses its partitions.
const WAITING_LIMIT: usize = 500;
/// How long `subscribe` waits for the first assignment.
const FIRST_ASSIGNMENT: Duration = Duration::from_secs(30);

/// Rebalance hooks: commits start positions for partitions new to the group, and reports
/// assignments.
pub struct MemberContext {
    initial: InitialOffset,
    assigned: watch::Sender<u64>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && tpl.count() > 0
            && let Err(e) = blocking(|| commit_start_positions(consumer, tpl, self.initial))
        {
            tracing::warn!(error = %e, "kafka: could not commit the start of partitions new to the group");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::debug!(partitions = tpl.count(), "kafka: partitions assigned");
                self.assigned.send_modify(|n| *n += 1);
            }
            Rebalance::Revoke(tpl) => {
                tracing::debug!(partitions = tpl.count(), "kafka: partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka: rebalance failed"),
        }
    }
}

/// Runs `f`, which blocks on the brokers (up to [`REBALANCE_CALL`] per request), without
/// stalling the other tasks of the runtime's worker it is called on: a rebalance callback runs
/// inside the member's poll, on a worker of the (multi-thread) runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// For each partition of `tpl` the group has no committed offset for: commits its end
/// (newest) or start (oldest).
fn commit_start_positions(
    consumer: &BaseConsumer<MemberContext>,
    tpl: &TopicPartitionList,
    initial: InitialOffset,
) -> rdkafka::error::KafkaResult<()> {
    let committed = consumer.committed_offsets(tpl.clone(), REBALANCE_CALL)?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Offset(_)) {
            continue;
        }
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), REBALANCE_CALL)?;
        let at = match initial {
            InitialOffset::Newest => high,
            InitialOffset::Oldest => low,
        };
        start.add_partition_offset(e.topic(), e.partition(), Offset::Offset(at))?;
    }
    if start.count() > 0 {
        consumer.commit(&start, CommitMode::Sync)?;
    }
    Ok(())
}

/// A running member; cancelling `cancel` makes it leave the group (committing what was
/// acknowledged).
pub struct Member {
    consumer: StreamConsumer<MemberContext>,
    handler: RecordHandler,
    retry: bool,
    retry_interval: Option<Duration>,
    cancel: CancellationToken,
    label: String,
    /// Whether the assignment is paused (too many records waiting).
    paused: AtomicBool,
    /// Records handed to the handler at once (1, or a bulk subscription's
    /// `maxBulkSubCount`).
    batch: usize,
}

impl Member {
    /// Joins `group`, subscribes to `topics` and waits for the first assignment (up to 30 s;
    /// a later one is logged, not an error). Up to `batch` records (at least 1) are handed to
    /// `handler` at once. Errors: unavailable when the consumer cannot be created or
    /// subscribe.
    pub async fn join(
        settings: &KafkaSettings,
        group: &str,
        topics: &[String],
        handler: RecordHandler,
        batch: usize,
        cancel: CancellationToken,
        label: String,
    ) -> Result<()> {
        let (assigned, mut seen) = watch::channel(0u64);
        let mut cfg = settings.client.clone();
        cfg.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "true")
            .set(
                "auto.offset.reset",
                match settings.initial_offset {
                    InitialOffset::Newest => "latest",
                    InitialOffset::Oldest => "earliest",
                },
            );
        let context = MemberContext {
            initial: settings.initial_offset,
            assigned,
        };
        let consumer: StreamConsumer<MemberContext> = cfg
            .create_with_context(context)
            .map_err(|e| Error::unavailable(format!("{label}: kafka consumer: {e}")))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| Error::unavailable(format!("{label}: subscribe to {topics:?}: {e}")))?;
        let member = Self {
            consumer,
            handler,
            retry: settings.retry,
            retry_interval: settings.retry_interval,
            cancel,
            label,
            paused: AtomicBool::new(false),
            batch: batch.max(1),
        };
        let label = member.label.clone();
        tokio::spawn(member.run());
        if tokio::time::timeout(FIRST_ASSIGNMENT, seen.changed())
            .await
            .is_err()
        {
            tracing::warn!(
                "{label}: no partitions assigned to consumer group '{group}' after 30 s; consuming once they are"
            );
        }
        Ok(())
    }

    /// Polls until cancelled, handing records to the handler one at a time.
    async fn run(self) {
        let mut waiting: VecDeque<OwnedMessage> = VecDeque::new();
        loop {
            let record = match waiting.pop_front() {
                Some(r) => r,
                None => {
                    self.set_paused(false);
                    tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => break,
                    r = self.consumer.recv() => match r {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            tracing::warn!(error = %e, "{}: kafka consume error", self.label);
                            continue;
                        }
                    },
                    }
                }
            };
            if !self.owns(&record) {
                continue;
            }
            let mut records = vec![record];
            while records.len() < self.batch {
                let next = match waiting.pop_front() {
                    Some(r) => r,
                    // What the client has fetched already, without waiting for more.
                    None => match self.consumer.recv().now_or_never() {
                        Some(Ok(m)) => m.detach(),
                        _ => break,
                    },
                };
                if self.owns(&next) {
                    records.push(next);
                }
            }
            if !self.deliver(&records, &mut waiting).await {
                break;
            }
        }
        // The final commit and leaving the group block on the brokers: off the runtime's
        // workers.
        let (consumer, label) = (self.consumer, self.label);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "{label}: final commit");
            }
            drop(consumer);
        })
        .await;
    }

    /// Whether the record's partition is still assigned here (a revoked one goes to its new
    /// owner from the committed offset).
    fn owns(&self, m: &OwnedMessage) -> bool {
        self.consumer.assignment().is_ok_and(|a| {
            a.elements_for_topic(m.topic())
                .iter()
                .any(|e| e.partition() == m.partition())
        })
    }

    fn set_paused(&self, paused: bool) {
        if !paused && !self.paused.swap(false, Ordering::Relaxed) {
            return;
        }
        self.paused.store(paused, Ordering::Relaxed);
        if let Ok(a) = self.consumer.assignment() {
            let r = if paused {
                self.consumer.pause(&a)
            } else {
                self.consumer.resume(&a)
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, paused, "{}: pause/resume", self.label);
            }
        }
    }

    /// Delivers `records` at once, each until acknowledged (or skipped), polling the group
    /// meanwhile (records arriving meanwhile join `waiting`); then stores their offsets, so
    /// none is committed before every earlier one of the batch was handled. `false` when
    /// cancelled.
    async fn deliver(
        &self,
        records: &[OwnedMessage],
        waiting: &mut VecDeque<OwnedMessage>,
    ) -> bool {
        let all = futures::future::join_all(records.iter().map(|r| self.attempts(r)));
        tokio::pin!(all);
        let done = loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return false,
                r = &mut all => break r,
                r = self.consumer.recv() => {
                    if let Ok(m) = r {
                        self.keep(m.detach(), waiting);
                    }
                }
            }
        };
        for (record, handled) in records.iter().zip(done) {
            if handled {
                self.store(record);
            }
        }
        true
    }

    /// Keeps a record that arrived while another was being handled; pauses the assignment
    /// once [`WAITING_LIMIT`] records wait (resumed when they are all handled).
    fn keep(&self, m: OwnedMessage, waiting: &mut VecDeque<OwnedMessage>) {
        waiting.push_back(m);
        if waiting.len() >= WAITING_LIMIT {
            // Also after a rebalance, which may have assigned unpaused partitions.
            self.set_paused(true);
        }
    }

    /// Hands `record` to the handler until it acknowledges it, retrying in place (after
    /// [`retry_delay`] or `consumeRetryInterval`); with retries off a failure skips it.
    /// `true` when it is handled (its offset may be stored), `false` when its partition was
    /// revoked meanwhile (its new owner delivers it again).
    async fn attempts(&self, record: &OwnedMessage) -> bool {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = std::panic::AssertUnwindSafe((self.handler)(record.clone()))
                .catch_unwind()
                .await;
            let failure = match outcome {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "handler panicked".to_owned(),
            };
            if !self.retry {
                tracing::error!(
                    topic = record.topic(),
                    partition = record.partition(),
                    offset = record.offset(),
                    "{}: delivery failed, record skipped (consumeRetryEnabled is false): {failure}",
                    self.label
                );
                return true;
            }
            tracing::warn!(
                topic = record.topic(),
                partition = record.partition(),
                offset = record.offset(),
                attempt,
                "{}: delivery failed, retrying: {failure}",
                self.label
            );
            let delay = self.retry_interval.unwrap_or_else(|| retry_delay(attempt));
            tokio::time::sleep(delay).await;
            if !self.owns(record) {
                return false;
            }
        }
    }

    /// Stores the offset after `record` for the next commit (`rd_kafka_offset_store` adds the
    /// one).
    fn store(&self, record: &OwnedMessage) {
        if let Err(e) =
            self.consumer
                .store_offset(record.topic(), record.partition(), record.offset())
        {
            // Revoked meanwhile: the new owner delivers it again.
            tracing::debug!(error = %e, "{}: store offset", self.label);
        }
    }
}
