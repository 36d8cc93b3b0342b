//! The `snowflake` sequencer (Layotto's `components/sequencer/snowflake`): ids made in the
//! sidecar from the time, a worker id leased in MySQL (see [`crate::worker`]) and a sequence.
//!
//! An id is `time << (workerBits + seqBits) | worker << seqBits | seq`, `time` in seconds
//! since `startTime` (`timeBits` + `workerBits` + `seqBits` = 63, Layotto's 28 + 22 + 13 by
//! default). One generator serves every key of a sidecar, so ids are unique across keys and
//! increase per key (and overall). The clock never makes an id repeat: see
//! [`crate::idgen`] (ids continue at the last time used when the clock goes back, borrowing
//! at most [`MAX_AHEAD`] seconds; beyond that a request waits up to `reqTimeout` for the
//! clock and then fails as unavailable).
//!
//! No database round trip is needed per id: the lease is renewed in the background, and the
//! persisted time horizon is raised ahead of the clock with each renewal. When the lease
//! cannot be renewed in time (MySQL down longer than the lease), requests fail as
//! unavailable until it is renewed; a lease another sidecar took meanwhile is replaced by a
//! fresh worker id.
//!
//! `validate` refuses time bits that have already run out from `startTime`, and warns
//! ([`Component::config_warnings`], printed by `validate` and logged at start-up) when they run
//! out within ten years: Layotto's default 28 bits of seconds from 2022-01-01 end in 2030.
//!
//! Upstream's faults fixed here: its worker table grows by one row per start and never
//! expires one (worker ids run out after `2^workerBits` starts, and a worker id above the
//! mask spills into the time bits); its per-key producers count time up without reading the
//! clock again; it records per-key state with `UPDATE INTO`, which MySQL rejects; it never
//! reads `biggerThan`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use layotto_core::metadata::{GoDuration, MillisDuration, decode, spec_error};
use layotto_core::sequencer::{BIGGER_THAN_KEY, Segment, Sequencer, parse_bigger_than};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Result};
use tokio::task::JoinHandle;

use crate::client::MySqlClient;
use crate::config::{MySqlConfig, mysql_metadata};
use crate::idgen::{IdState, Layout, MAX_AHEAD, Step, civil_from_days, parse_date};
use crate::worker::{DEFAULT_TABLE, Lease, WorkerTable};

/// Metadata key: bits of the time (seconds since `startTime`); default 28.
pub const TIME_BITS_KEY: &str = "timeBits";
/// Metadata key: bits of the worker id; default 22.
pub const WORKER_BITS_KEY: &str = "workerBits";
/// Metadata key: bits of the per-second sequence; default 13.
pub const SEQ_BITS_KEY: &str = "seqBits";
/// Metadata key: the epoch of the time field, `YYYY-MM-DD` (UTC); default `2022-01-01`.
pub const START_TIME_KEY: &str = "startTime";
/// Metadata key: how long a request may wait for the clock (milliseconds or a Go duration;
/// default 500 ms, as Layotto).
pub const REQ_TIMEOUT_KEY: &str = "reqTimeout";
/// Metadata key (this project's): length of a worker id lease (seconds or a Go duration;
/// default 30 s), renewed every third of it.
pub const WORKER_LEASE_TTL_KEY: &str = "workerLeaseTtl";

/// Layotto's default `startTime`.
pub const DEFAULT_START_TIME: &str = "2022-01-01";
/// Layotto's default `reqTimeout`.
pub const DEFAULT_REQ_TIMEOUT: Duration = Duration::from_millis(500);
/// The default worker id lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Time left below which the factory warns that the time bits run out.
const WARN_WITHIN_SECS: i64 = 10 * 365 * 86_400 + 2 * 86_400;
/// How long a failed lease renewal answers later requests without a new attempt.
const FAIL_FAST: Duration = Duration::from_millis(500);

mysql_metadata! {
    /// Metadata of [`SnowflakeSequencer`]: the connection keys (see [`crate::config`]; the
    /// table is the worker table) plus the bit layout, `startTime`, `reqTimeout`,
    /// `workerLeaseTtl` and `biggerThan`. Layotto's `keyTableName` and `keyTimeout` (its
    /// per-key producer table and idle timeout) are accepted without effect.
    pub struct SnowflakeMetadata {
        /// `timeBits`: bits of the time.
        pub time_bits: Option<u32>,
        /// `workerBits`: bits of the worker id.
        pub worker_bits: Option<u32>,
        /// `seqBits`: bits of the sequence.
        pub seq_bits: Option<u32>,
        /// `startTime`: `YYYY-MM-DD`, the epoch of the time field.
        pub start_time: Option<String>,
        /// `reqTimeout`: how long a request may wait for the clock.
        pub req_timeout: Option<MillisDuration>,
        /// `workerLeaseTtl`: length of a worker id lease.
        pub worker_lease_ttl: Option<GoDuration>,
        /// `biggerThan`: a JSON object key -> integer; checked against the first id in `init`.
        pub bigger_than: Option<String>,
    }
}

impl ComponentMetadata for SnowflakeMetadata {
    const NO_EFFECT: &'static [&'static str] = &["keyTableName", "keyTimeout"];
}

/// What the renewal task and the requests share.
#[derive(Debug)]
struct Shared {
    client: MySqlClient,
    workers: WorkerTable,
    layout: Layout,
    start_secs: i64,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    ids: IdState,
    lease: Option<Lease>,
    /// The last failed lease renewal, answered again for [`FAIL_FAST`].
    failure: Option<(Instant, Error)>,
}

/// Snowflake sequencer with worker ids leased in MySQL (type `snowflake`). See the module
/// documentation.
#[derive(Debug)]
pub struct SnowflakeSequencer {
    shared: Arc<Shared>,
    req_timeout: Duration,
    floors: HashMap<String, i64>,
    time_warning: Option<String>,
    renewer: Mutex<Option<JoinHandle<()>>>,
}

impl SnowflakeSequencer {
    /// Factory: [`SnowflakeMetadata`]. Does no I/O; notes a warning
    /// ([`SnowflakeSequencer::time_warning`]) when the time bits run out within ten years.
    ///
    /// # Errors
    /// Invalid argument naming the component and the offending key: bits that do not add up
    /// to 63, a bad `startTime`, time bits that have already run out.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: SnowflakeMetadata = decode(spec)?;
        let cfg = MySqlConfig::from_meta(spec, &meta.connection(), DEFAULT_TABLE)?;
        let d = Layout::DEFAULT;
        let layout = Layout {
            time_bits: meta.time_bits.unwrap_or(d.time_bits),
            worker_bits: meta.worker_bits.unwrap_or(d.worker_bits),
            seq_bits: meta.seq_bits.unwrap_or(d.seq_bits),
        };
        for (key, bits) in [
            (TIME_BITS_KEY, layout.time_bits),
            (WORKER_BITS_KEY, layout.worker_bits),
            (SEQ_BITS_KEY, layout.seq_bits),
        ] {
            if !(1..=61).contains(&bits) {
                return Err(spec_error(
                    spec,
                    format!("metadata '{key}' must be between 1 and 61, got {bits}"),
                ));
            }
        }
        let sum = layout.time_bits + layout.worker_bits + layout.seq_bits;
        if sum != 63 {
            return Err(spec_error(
                spec,
                format!(
                    "metadata '{TIME_BITS_KEY}' ({}) + '{WORKER_BITS_KEY}' ({}) + \
                     '{SEQ_BITS_KEY}' ({}) must be 63 (the sign bit stays clear), got {sum}",
                    layout.time_bits, layout.worker_bits, layout.seq_bits
                ),
            ));
        }
        let start_text = meta.start_time.as_deref().map(str::trim);
        let start_text = start_text
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_START_TIME);
        let start_secs = parse_date(start_text).ok_or_else(|| {
            spec_error(
                spec,
                format!(
                    "metadata '{START_TIME_KEY}' must be a date YYYY-MM-DD, got '{start_text}'"
                ),
            )
        })?;
        let now = unix_secs();
        if start_secs > now {
            return Err(spec_error(
                spec,
                format!("metadata '{START_TIME_KEY}' ({start_text}) is in the future"),
            ));
        }
        let end_secs = start_secs.saturating_add(layout.max_time().saturating_add(1));
        let end = civil_from_days(end_secs.div_euclid(86_400));
        if end_secs <= now {
            return Err(spec_error(
                spec,
                format!(
                    "metadata '{TIME_BITS_KEY}' ({}) from '{START_TIME_KEY}' ({start_text}) ran \
                     out on {end}: raise timeBits or move startTime",
                    layout.time_bits
                ),
            ));
        }
        let time_warning = (end_secs - now < WARN_WITHIN_SECS).then(|| {
            format!(
                "snowflake ids run out on {end} ({} time bits of seconds from {start_text}, \
                 metadata '{TIME_BITS_KEY}' and '{START_TIME_KEY}'); raise timeBits or move \
                 startTime before then",
                layout.time_bits
            )
        });
        let req_timeout = match meta.req_timeout {
            None => DEFAULT_REQ_TIMEOUT,
            Some(MillisDuration(d)) if d.is_zero() => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{REQ_TIMEOUT_KEY}' must be greater than 0"),
                ));
            }
            Some(MillisDuration(d)) => d,
        };
        let ttl = match meta.worker_lease_ttl {
            None => DEFAULT_LEASE_TTL,
            Some(GoDuration(d)) if d < Duration::from_secs(1) => {
                return Err(spec_error(
                    spec,
                    format!("metadata '{WORKER_LEASE_TTL_KEY}' must be at least 1s"),
                ));
            }
            Some(GoDuration(d)) => d,
        };
        let floors = parse_bigger_than(meta.bigger_than.as_deref())
            .map_err(|e| spec_error(spec, e.message))?;
        let workers = WorkerTable::new(&cfg.table, ttl);
        Ok(Self {
            shared: Arc::new(Shared {
                client: MySqlClient::new(format!("sequencer '{}'", spec.name), cfg),
                workers,
                layout,
                start_secs,
                state: tokio::sync::Mutex::new(State {
                    ids: IdState::new(layout),
                    lease: None,
                    failure: None,
                }),
            }),
            req_timeout,
            floors,
            time_warning,
            renewer: Mutex::new(None),
        })
    }

    /// The warning about time bits that run out within ten years, if any (also
    /// [`Component::config_warnings`], which `validate` prints and start-up logs).
    pub fn time_warning(&self) -> Option<&str> {
        self.time_warning.as_deref()
    }

    /// The bit layout.
    pub fn layout(&self) -> Layout {
        self.shared.layout
    }

    /// The worker id this sidecar holds now, if any.
    pub async fn worker_id(&self) -> Option<i64> {
        self.shared.state.lock().await.lease.map(|l| l.worker)
    }

    /// The worker table.
    pub fn table(&self) -> &str {
        self.shared.workers.table()
    }

    /// This sidecar's lease token (the `PORT` column of the row it holds).
    pub fn lease_token(&self) -> &str {
        self.shared.workers.token()
    }

    async fn next_id(&self) -> Result<i64> {
        let sh = &self.shared;
        let give_up = Instant::now() + self.req_timeout;
        loop {
            let mut g = tokio::time::timeout(sh.client.timeout(), sh.state.lock())
                .await
                .map_err(|_| {
                    sh.client.err(Error::unavailable(
                        "the worker lease is being renewed and MySQL does not answer",
                    ))
                })?;
            let lease = sh.ensure_lease(&mut g).await?;
            let now_t = sh.now_t();
            match g.ids.next(now_t, lease.worker, lease.horizon) {
                Step::Id(id) => return Ok(id),
                Step::NeedHorizon(t) => {
                    let target = t.max(sh.reserve(now_t));
                    sh.raise_horizon(&mut g, lease, target).await?;
                }
                Step::Ahead(n) => {
                    let behind = g.ids.clock_behind(now_t);
                    drop(g);
                    let wait_until_ms = (sh.start_secs + now_t + n) * 1000;
                    let wait = Duration::from_millis(
                        u64::try_from(wait_until_ms - unix_millis()).unwrap_or(0),
                    );
                    if Instant::now() + wait > give_up {
                        let why = if behind > 0 {
                            format!("the clock moved back by {behind}s")
                        } else {
                            format!(
                                "more than {} ids per second were asked",
                                sh.layout.max_seq() + 1
                            )
                        };
                        return Err(sh.client.err(Error::unavailable(format!(
                            "get_next_id: {why}; ids would run {}s ahead of the clock, so this \
                             sidecar waits for the clock ({n}s more than metadata \
                             '{REQ_TIMEOUT_KEY}' allows) rather than risk a duplicate",
                            n + MAX_AHEAD
                        ))));
                    }
                    tokio::time::sleep(wait).await;
                }
                Step::Exhausted => {
                    return Err(sh.client.err(Error::internal(format!(
                        "get_next_id: the {} time bits (metadata '{TIME_BITS_KEY}') ran out",
                        sh.layout.time_bits
                    ))));
                }
            }
        }
    }
}

impl Shared {
    /// Seconds since `startTime` by this host's clock.
    fn now_t(&self) -> i64 {
        unix_millis().div_euclid(1000) - self.start_secs
    }

    /// The horizon a renewal at `now_t` reserves: past the next renewal and the borrowed
    /// seconds.
    fn reserve(&self, now_t: i64) -> i64 {
        let every = self.workers.ttl().as_secs_f64() / 3.0;
        now_t + every.ceil() as i64 + MAX_AHEAD + 1
    }

    /// The valid lease, renewing (or replacing a lost) one first. Errors: unavailable when
    /// MySQL cannot be reached; a failure is answered again for [`FAIL_FAST`].
    async fn ensure_lease(&self, g: &mut State) -> Result<Lease> {
        if let Some(l) = g.lease
            && Instant::now() < l.deadline
        {
            return Ok(l);
        }
        if let Some((at, e)) = &g.failure
            && at.elapsed() < FAIL_FAST
        {
            return Err(e.clone());
        }
        let r = self.refresh(g).await;
        match &r {
            Ok(_) => g.failure = None,
            Err(e) => g.failure = Some((Instant::now(), e.clone())),
        }
        r
    }

    async fn refresh(&self, g: &mut State) -> Result<Lease> {
        let now_t = self.now_t();
        if let Some(l) = g.lease {
            let target = l.horizon.max(self.reserve(now_t));
            match self.workers.renew(&self.client, l.worker, target).await? {
                Some(nl) => {
                    g.lease = Some(nl);
                    return Ok(nl);
                }
                None => {
                    tracing::warn!(
                        component = %self.client.label,
                        worker = l.worker,
                        "another sidecar took this snowflake worker id after its lease ran out; \
                         leasing a new one"
                    );
                    g.lease = None;
                }
            }
        }
        let l = self
            .workers
            .acquire(&self.client, self.layout.max_worker())
            .await?;
        g.ids.leased(l.horizon);
        g.lease = Some(l);
        tracing::info!(component = %self.client.label, worker = l.worker, "leased a snowflake worker id");
        Ok(l)
    }

    /// Persists a horizon of at least `target` for `lease` before an id uses it.
    async fn raise_horizon(&self, g: &mut State, lease: Lease, target: i64) -> Result<()> {
        match self.workers.renew(&self.client, lease.worker, target).await {
            Ok(Some(nl)) => {
                g.lease = Some(nl);
                Ok(())
            }
            Ok(None) => {
                g.lease = None;
                Ok(())
            }
            Err(e) => {
                g.failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// One background renewal: renews without holding the state lock during I/O.
    async fn renew_once(&self) {
        let (lease, now_t) = {
            let g = self.state.lock().await;
            (g.lease, self.now_t())
        };
        let Some(lease) = lease else { return };
        let target = lease.horizon.max(self.reserve(now_t));
        let r = self.workers.renew(&self.client, lease.worker, target).await;
        let mut g = self.state.lock().await;
        let Some(current) = g.lease.filter(|c| c.worker == lease.worker) else {
            return;
        };
        match r {
            Ok(Some(nl)) => {
                g.lease = Some(Lease {
                    worker: current.worker,
                    horizon: current.horizon.max(nl.horizon),
                    deadline: current.deadline.max(nl.deadline),
                });
                g.failure = None;
            }
            Ok(None) => {
                tracing::warn!(component = %self.client.label, worker = lease.worker,
                    "lost the snowflake worker id lease to another sidecar");
                g.lease = None;
            }
            Err(e) => {
                tracing::warn!(component = %self.client.label, error = %e,
                    "could not renew the snowflake worker id lease");
            }
        }
    }
}

/// Renews the lease every third of its length until the sequencer is dropped or closed.
async fn renew_loop(shared: Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(sh) = shared.upgrade() else { return };
        sh.renew_once().await;
    }
}

#[async_trait]
impl Component for SnowflakeSequencer {
    /// Connects (creating the database if missing), creates the worker table (or adds the
    /// lease columns to Layotto's), leases a worker id, checks the `biggerThan` floors against
    /// the first id, and starts renewing the lease. Errors: unavailable (MySQL unreachable,
    /// every worker id leased), permission denied, invalid argument (a floor above the ids).
    async fn init(&self) -> Result<()> {
        let sh = &self.shared;
        sh.client.connect().await?;
        sh.workers.ensure(&sh.client).await?;
        {
            let mut g = sh.state.lock().await;
            // A failed earlier init is not answered again: init always tries.
            g.failure = None;
            let lease = sh.ensure_lease(&mut g).await?;
            let now_t = sh.now_t();
            sh.raise_horizon(&mut g, lease, lease.horizon.max(sh.reserve(now_t)))
                .await?;
            let first_t = now_t.max(g.ids.last_time() + 1);
            let first = sh.layout.compose(first_t, 0, 0);
            if let Some((k, floor)) = self.floors.iter().find(|(_, f)| **f >= first) {
                return Err(sh.client.err(Error::invalid(format!(
                    "metadata '{BIGGER_THAN_KEY}': the floor {floor} of key '{k}' is above the \
                     snowflake ids of now (about {first}); it cannot be guaranteed"
                ))));
            }
        }
        let every = sh.workers.ttl() / 3;
        let task = tokio::spawn(renew_loop(Arc::downgrade(sh), every));
        if let Some(old) = self
            .renewer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    /// The warning about time bits that run out within ten years.
    fn config_warnings(&self) -> Vec<String> {
        self.time_warning.iter().cloned().collect()
    }

    /// A real round trip, and a valid worker lease (renewed here when it ran out).
    async fn health(&self) -> Health {
        let sh = &self.shared;
        let h = sh.client.health().await;
        if h.status != layotto_core::HealthStatus::Up {
            return h;
        }
        let Ok(mut g) = tokio::time::timeout(sh.client.timeout(), sh.state.lock()).await else {
            return Health::down("the worker lease is being renewed and MySQL does not answer");
        };
        match sh.ensure_lease(&mut g).await {
            Ok(_) => Health::up(),
            Err(e) => Health::down(format!("no snowflake worker id lease: {}", e.message)),
        }
    }

    /// Stops renewing, ends the lease (the worker id is free at once) and closes the pool.
    async fn close(&self) -> Result<()> {
        if let Some(t) = self
            .renewer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        let sh = &self.shared;
        let lease = sh.state.lock().await.lease.take();
        let released = match lease {
            Some(l) => sh.workers.release(&sh.client, l.worker).await,
            None => Ok(()),
        };
        sh.client.close().await;
        released
    }
}

impl Drop for SnowflakeSequencer {
    fn drop(&mut self) {
        if let Some(t) = self
            .renewer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }
}

#[async_trait]
impl Sequencer for SnowflakeSequencer {
    async fn get_next_id(&self, key: &str) -> Result<i64> {
        if key.is_empty() {
            return Err(self.shared.client.err(Error::empty_field("key")));
        }
        self.next_id().await
    }

    /// Always `None`: ids are made in the sidecar, one at a time.
    async fn get_segment(&self, _key: &str, size: u32) -> Result<Option<Segment>> {
        if size == 0 {
            return Err(self
                .shared
                .client
                .err(Error::invalid("segment size must be greater than 0")));
        }
        Ok(None)
    }
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn unix_secs() -> i64 {
    unix_millis().div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ComponentSpec {
        // Layotto's config_snowflake.json.
        ComponentSpec::new("sequencer_demo", "snowflake")
            .with("mysqlHost", "localhost:3306")
            .with("userName", "root")
            .with("password", "123456")
            .with("databaseName", "layotto_sequencer")
            .with("tableName", "layotto_sequencer_snowflake")
            .with("timeBits", "28")
            .with("workerBits", "22")
            .with("seqBits", "13")
            .with("startTime", "2022-01-01")
    }

    #[test]
    fn layotto_config_builds_and_warns_about_2030() {
        let s = SnowflakeSequencer::from_spec(&spec()).expect("Layotto's file");
        assert_eq!(s.layout(), Layout::DEFAULT);
        assert_eq!(s.table(), "layotto_sequencer_snowflake");
        let w = s.time_warning().expect("28 bits from 2022 end in 2030");
        assert!(w.contains("2030-07-04") && w.contains("timeBits"), "{w}");
        let s = SnowflakeSequencer::from_spec(
            &spec()
                .with("timeBits", "31")
                .with("workerBits", "20")
                .with("seqBits", "12"),
        )
        .expect("31 bits");
        assert_eq!(s.time_warning(), None, "31 bits of seconds last until 2090");
        let keys = layotto_core::MetadataKeys::of::<SnowflakeMetadata>().warnings_with(
            &spec()
                .with("keyTableName", "k")
                .with("keyTimeout", "24")
                .metadata,
            &[],
        );
        assert_eq!(keys.len(), 2, "{keys:?}");
    }

    #[test]
    fn bad_metadata_names_the_key() {
        for (s, key) in [
            (spec().with("timeBits", "30"), "timeBits"),
            (spec().with("seqBits", "x"), "seqBits"),
            (
                spec()
                    .with("timeBits", "0")
                    .with("workerBits", "50")
                    .with("seqBits", "13"),
                "timeBits",
            ),
            (spec().with("startTime", "2022/01/01"), "startTime"),
            (spec().with("startTime", "2999-01-01"), "startTime"),
            (
                spec()
                    .with("startTime", "1970-01-01")
                    .with("timeBits", "20")
                    .with("workerBits", "30"),
                "timeBits",
            ),
            (spec().with("reqTimeout", "0"), "reqTimeout"),
            (spec().with("workerLeaseTtl", "10ms"), "workerLeaseTtl"),
            (spec().with("biggerThan", "[1]"), "biggerThan"),
        ] {
            let e = SnowflakeSequencer::from_spec(&s).expect_err(key);
            assert_eq!(e.kind, layotto_core::ErrorKind::InvalidArgument, "{e}");
            assert!(e.message.contains(key), "{key}: {e}");
            assert!(e.message.contains("'sequencer_demo'"), "{e}");
        }
    }
}
