//! The snowflake id arithmetic, free of I/O: the bit [`Layout`] and the generator state
//! [`IdState`] that turns "now" into the next id or says what must happen first (persist a
//! higher time horizon, wait for the clock, give up).
//!
//! An id is `time << (workerBits + seqBits) | worker << seqBits | seq` with the sign bit
//! clear. `time` counts seconds since `startTime` (Layotto's unit). Within one holder `time`
//! never goes back: when the clock does, or when more than `2^seqBits` ids are asked within
//! one second, ids continue at the last time used (borrowing up to [`MAX_AHEAD`] seconds
//! ahead of the clock); beyond that the caller waits for the clock or refuses. Time is the
//! most significant field, so ids increase even when the holder changes worker id.

/// How many seconds the id time may run ahead of the clock (and of the time inherited with a
/// worker id) before callers wait for the clock.
pub const MAX_AHEAD: i64 = 5;

/// How the 63 usable bits of an id are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bits of the time (seconds since `startTime`).
    pub time_bits: u32,
    /// Bits of the worker id.
    pub worker_bits: u32,
    /// Bits of the per-second sequence.
    pub seq_bits: u32,
}

impl Layout {
    /// Layotto's defaults: 28 time bits, 22 worker bits, 13 sequence bits.
    pub const DEFAULT: Layout = Layout {
        time_bits: 28,
        worker_bits: 22,
        seq_bits: 13,
    };

    /// The largest time value.
    pub fn max_time(&self) -> i64 {
        (1i64 << self.time_bits) - 1
    }

    /// The largest worker id.
    pub fn max_worker(&self) -> i64 {
        (1i64 << self.worker_bits) - 1
    }

    /// The largest sequence number.
    pub fn max_seq(&self) -> i64 {
        (1i64 << self.seq_bits) - 1
    }

    /// The id of `(time, worker, seq)`.
    pub fn compose(&self, time: i64, worker: i64, seq: i64) -> i64 {
        (time << (self.worker_bits + self.seq_bits)) | (worker << self.seq_bits) | seq
    }

    /// `(time, worker, seq)` of `id`.
    pub fn decompose(&self, id: i64) -> (i64, i64, i64) {
        (
            id >> (self.worker_bits + self.seq_bits),
            (id >> self.seq_bits) & self.max_worker(),
            id & self.max_seq(),
        )
    }
}

/// What [`IdState::next`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The id to hand out (already recorded as used).
    Id(i64),
    /// Time `t` lies beyond the persisted horizon: persist a horizon of at least `t`, then ask
    /// again.
    NeedHorizon(i64),
    /// The id time would run this many seconds too far ahead of the clock: wait, then ask
    /// again.
    Ahead(i64),
    /// Every time value is used up.
    Exhausted,
}

/// The generator state of one sidecar: the last time and sequence used.
#[derive(Debug, Clone)]
pub struct IdState {
    layout: Layout,
    last_t: i64,
    seq: i64,
    /// The first time value of the current worker lease: time inherited with the worker id
    /// may run ahead of the clock by [`MAX_AHEAD`] on top of it.
    anchor: i64,
    /// The highest clock reading seen, to tell a clock that went back from mere load.
    max_now: i64,
}

impl IdState {
    /// A fresh state: nothing used yet.
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            last_t: -1,
            seq: layout.max_seq(),
            anchor: 0,
            max_now: i64::MIN,
        }
    }

    /// The bit layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The last time value used (`-1` before the first id).
    pub fn last_time(&self) -> i64 {
        self.last_t
    }

    /// A worker id was (re)leased whose previous holders may have used times up to
    /// `horizon`: the next id takes a time above both `horizon` and every time used here.
    pub fn leased(&mut self, horizon: i64) {
        if horizon > self.last_t {
            self.last_t = horizon;
        }
        self.seq = self.layout.max_seq();
        self.anchor = self.last_t + 1;
    }

    /// How far the clock went back (seconds) below the highest reading seen; 0 if it did not.
    pub fn clock_behind(&self, now_t: i64) -> i64 {
        (self.max_now - now_t).max(0)
    }

    /// The next id of `worker` at clock time `now_t` (seconds since `startTime`), given the
    /// persisted `horizon` (the highest time this holder may use).
    pub fn next(&mut self, now_t: i64, worker: i64, horizon: i64) -> Step {
        self.max_now = self.max_now.max(now_t);
        let (t, seq) = if now_t > self.last_t {
            (now_t, 0)
        } else if self.seq < self.layout.max_seq() {
            (self.last_t, self.seq + 1)
        } else {
            (self.last_t + 1, 0)
        };
        if t > self.layout.max_time() {
            return Step::Exhausted;
        }
        let ahead = t - now_t.max(self.anchor);
        if ahead > MAX_AHEAD {
            return Step::Ahead(ahead - MAX_AHEAD);
        }
        if t > horizon {
            return Step::NeedHorizon(t);
        }
        self.last_t = t;
        self.seq = seq;
        Step::Id(self.layout.compose(t, worker, seq))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> String {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the Unix epoch of `YYYY-MM-DD` (midnight UTC).
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const SMALL: Layout = Layout {
        time_bits: 40,
        worker_bits: 20,
        seq_bits: 3,
    };

    fn id(s: &mut IdState, now: i64) -> i64 {
        match s.next(now, 7, i64::MAX) {
            Step::Id(id) => id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn layout_composes_and_decomposes() {
        let l = Layout::DEFAULT;
        assert_eq!(l.time_bits + l.worker_bits + l.seq_bits, 63);
        let id = l.compose(l.max_time(), l.max_worker(), l.max_seq());
        assert_eq!(id, i64::MAX);
        assert_eq!(l.decompose(l.compose(5, 9, 3)), (5, 9, 3));
    }

    #[test]
    fn ids_increase_and_borrow_ahead_when_the_sequence_runs_out() {
        let mut s = IdState::new(SMALL);
        let mut last = -1;
        let mut seen = HashSet::new();
        // 8 ids per second; 48 ids at one clock reading use 6 seconds: the clock second and
        // MAX_AHEAD (5) borrowed.
        for _ in 0..48 {
            let i = id(&mut s, 100);
            assert!(i > last && seen.insert(i));
            last = i;
        }
        assert_eq!(s.last_time(), 105);
        assert_eq!(s.next(100, 7, i64::MAX), Step::Ahead(1));
        // The clock catches up: ids go on.
        assert!(id(&mut s, 101) > last);
    }

    #[test]
    fn a_clock_that_goes_back_never_repeats_an_id() {
        let mut s = IdState::new(SMALL);
        let a = id(&mut s, 10_000);
        // Back by 2 s: ids go on at the last time used.
        let b = id(&mut s, 9_998);
        assert!(b > a);
        assert_eq!(SMALL.decompose(b).0, 10_000);
        assert_eq!(s.clock_behind(9_998), 2);
        // Back by an hour: callers must wait (or refuse) until the clock is back.
        assert_eq!(
            s.next(10_000 - 3600, 7, i64::MAX),
            Step::Ahead(3600 - MAX_AHEAD)
        );
        assert!(id(&mut s, 10_001) > b);
    }

    #[test]
    fn horizon_and_exhaustion() {
        let mut s = IdState::new(SMALL);
        assert_eq!(s.next(10, 1, 9), Step::NeedHorizon(10));
        assert!(matches!(s.next(10, 1, 10), Step::Id(_)));
        let tiny = Layout {
            time_bits: 4,
            worker_bits: 50,
            seq_bits: 9,
        };
        let mut s = IdState::new(tiny);
        assert!(matches!(s.next(15, 0, i64::MAX), Step::Id(_)));
        assert_eq!(s.next(16, 0, i64::MAX), Step::Exhausted);
    }

    #[test]
    fn a_leased_worker_starts_above_the_inherited_horizon() {
        let mut s = IdState::new(SMALL);
        let before = id(&mut s, 50);
        // The worker id's last holder may have used times up to 53, ahead of our clock.
        s.leased(53);
        let after = id(&mut s, 50);
        assert_eq!(SMALL.decompose(after).0, 54);
        assert!(after > before);
        // Inherited time does not count against MAX_AHEAD.
        for _ in 0..8 * 5 {
            assert!(matches!(s.next(50, 7, i64::MAX), Step::Id(_)));
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2022-01-01"), Some(1_640_995_200));
        assert_eq!(civil_from_days(1_640_995_200 / 86_400), "2022-01-01");
        assert_eq!(civil_from_days(days_from_civil(2030, 7, 5)), "2030-07-05");
        for bad in ["2022-13-01", "2022-02-30", "22-1", "x", "2021-02-29"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("2024-02-29").is_some());
    }
}
