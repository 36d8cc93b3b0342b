//! Small helpers shared by the components: metadata checks, time formatting, duration parsing.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use layotto_core::{ComponentSpec, Error, Result};

/// Component metadata key every component accepts: the runtime reads it to prefix keys.
pub const KEY_PREFIX: &str = "keyPrefix";

/// Fails naming each metadata key of `spec` that is neither in `known` nor [`KEY_PREFIX`].
///
/// # Errors
/// Invalid argument listing the unknown keys.
pub fn reject_unknown(spec: &ComponentSpec, known: &[&str]) -> Result<()> {
    let mut all: Vec<&str> = Vec::with_capacity(known.len() + 1);
    all.extend_from_slice(known);
    all.push(KEY_PREFIX);
    spec.reject_unknown(&all)
}

/// Parses a boolean metadata value (`true`/`false`, also `1`/`0`, `yes`/`no`, any case).
///
/// # Errors
/// Invalid argument naming the component and `key`.
pub fn parse_bool(spec: &ComponentSpec, key: &str, default: bool) -> Result<bool> {
    match spec.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(Error::invalid(format!(
                "component '{}': metadata '{key}' must be true or false, got '{v}'",
                spec.name
            ))),
        },
    }
}

/// Locks `m`, ignoring poisoning: no component panics while holding its locks, and the data
/// behind them stays consistent at every await-free step.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Formats `t` as RFC 3339 in UTC with second precision, e.g. `2024-05-01T12:00:00Z`.
/// Times before 1970 are clamped to the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // d is in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Parses a duration: a bare integer is milliseconds (`"500"`); otherwise a Go duration string
/// made of numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `"5s"`, `"1m30s"`,
/// `"1.5s"`.
///
/// # Errors
/// Invalid argument naming `key` when the text is neither form or overflows.
pub fn parse_duration(key: &str, raw: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(format!(
            "metadata '{key}' must be milliseconds or a duration like '5s', '500ms', '2m', got '{raw}'"
        ))
    };
    let s = raw.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    // Bounded above and non-negative: the cast is exact enough for nanoseconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn parses_durations() {
        let p = |s| parse_duration("t", s);
        assert_eq!(p("250").ok(), Some(Duration::from_millis(250)));
        assert_eq!(p("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(p("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(p("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(p("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(p("1.5s").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(p("1h").ok(), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "5x", "-1s", "1.2.3s", "5 s"] {
            let e = p(bad).expect_err(bad);
            assert!(e.message.contains("'t'"), "{e}");
        }
    }
}
