//! The load driver: closed loop at saturation and open loop at a fixed rate, with HDR
//! histograms of latency in microseconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hdrhistogram::Histogram;

/// One request of a scenario; `Err` counts as an error.
pub type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What a run measured.
pub struct Stats {
    /// Latencies in microseconds.
    pub hist: Histogram<u64>,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Open loop only: latency from the actual send (service time), microseconds. The main
    /// histogram holds latency from the intended start, which adds the timer's lateness
    /// (tokio's timer has 1 ms granularity).
    pub service: Option<Histogram<u64>>,
}

impl Stats {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("1 us .. 60 s at 3 significant figures is a valid histogram"),
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            service: None,
        }
    }
    /// Adds `other`'s counts, histograms and elapsed time to these.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.hist.add(&other.hist);
        self.elapsed += other.elapsed;
        match (&mut self.service, &other.service) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.add(theirs);
            }
            (None, Some(theirs)) => self.service = Some(theirs.clone()),
            _ => {}
        }
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
    fn record(&mut self, latency: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.ok += 1;
                let us = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = self.hist.record(us.min(60_000_000));
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
            }
        }
    }
    /// Achieved rate in requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// Latency at quantile `q` in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    /// Service time (from the actual send) at quantile `q` in milliseconds; the latency when
    /// no service times were recorded.
    pub fn service_ms(&self, q: f64) -> f64 {
        self.service
            .as_ref()
            .map_or_else(|| self.ms(q), |h| h.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// How long or how many.
#[derive(Clone, Copy)]
pub enum Limit {
    /// Run for this long.
    For(Duration),
    /// Run this many requests in total.
    Count(u64),
}

/// Closed loop: `concurrency` workers, each sending its next request when the previous answered.
pub async fn closed_loop(op: Op, concurrency: usize, limit: Limit) -> Stats {
    let start = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (op, sent) = (op.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new();
            loop {
                match limit {
                    Limit::For(d) if start.elapsed() >= d => break,
                    Limit::Count(n)
                        if sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= n =>
                    {
                        break;
                    }
                    _ => {}
                }
                let t = Instant::now();
                let r = op(w).await;
                st.record(t.elapsed(), r);
            }
            st
        }));
    }
    let mut total = Stats::new();
    for t in tasks {
        if let Ok(st) = t.await {
            total.merge(&st);
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// Open loop: requests start at a fixed `rate` per second whatever the latency; latency is
/// measured from each request's intended start (no coordinated omission).
pub async fn open_loop(op: Op, rate: u64, duration: Duration) -> Stats {
    let total = Arc::new(Mutex::new(Stats::new()));
    let service = Arc::new(Mutex::new(Stats::new()));
    let start = Instant::now();
    let n = rate.saturating_mul(duration.as_secs()).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut tasks = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for k in 0..n {
        let intended = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(intended.into()).await;
        let (op, total, service) = (op.clone(), total.clone(), service.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = op(usize::try_from(k).unwrap_or(0)).await;
            let (latency, took) = (intended.elapsed(), sent.elapsed());
            if let Ok(mut s) = service.lock() {
                s.record(took, r.clone());
            }
            if let Ok(mut t) = total.lock() {
                t.record(latency, r);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut out = Stats::new();
    if let Ok(t) = total.lock() {
        out.merge(&t);
    }
    if let Ok(s) = service.lock() {
        out.service = Some(s.hist.clone());
    }
    out.elapsed = start.elapsed();
    out
}

/// CPU time (user + system) of process `pid` in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| "malformed /proc stat".to_owned())
    };
    // Linux reports in USER_HZ, which is 100 on every mainstream kernel.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Context switches (voluntary + involuntary) of every thread of process `pid` so far, from
/// `/proc/<pid>/task/*/status`. Threads that exited are not counted, so read it around runs
/// of a process whose threads live on (a tokio runtime's workers do).
pub fn context_switches(pid: u32) -> Result<u64, String> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
    let mut total = 0;
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}
