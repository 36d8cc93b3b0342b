//! Dapr's `bindings.cron`: an input binding that fires on a schedule
//! (components-contrib `bindings/cron/cron.go`; docs.dapr.io "Cron binding spec").
//!
//! `schedule` takes what daprd's parser takes (robfig/cron with optional seconds and
//! descriptors): five fields (`*/5 * * * *`) or six with seconds first (`*/15 * * * * *`),
//! `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`, and
//! `@every <Go duration>` (`@every 15s`, `@every 1h30m`; whole seconds, at least one). Fields
//! are evaluated in the sidecar's local time zone, as daprd does; a `CRON_TZ=`/`TZ=` prefix
//! other than `UTC` or `Local` is refused (no time zone database here). Each tick is one event
//! without data and with metadata `timeZone` (`Local`, or `UTC`) and `readTimeUTC` (Go's
//! `time.Time.String` of the tick in UTC, e.g. `2024-05-01 12:00:00.5 +0000 UTC`). A tick the
//! app fails is not repeated; ticks do not pile up while the app is slow (the next one is
//! computed after the previous delivery ended).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Local, Utc};
use layotto_core::binding::{
    BindingRequest, BindingResponse, InputBinding, InputEvent, InputHandler, OutputBinding,
};
use layotto_core::metadata::{decode, parse_duration};
use layotto_core::pubsub::Subscription;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Metadata, Result};

/// Component type.
pub const TYPE: &str = "cron";
/// Metadata key of the schedule.
pub const SCHEDULE_KEY: &str = "schedule";

/// Metadata of [`CronBinding`] (Dapr's keys).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct CronMetadata {
    /// `schedule` (required): see the module documentation.
    pub schedule: Option<String>,
}

impl ComponentMetadata for CronMetadata {}

/// When ticks fall.
#[derive(Debug, Clone)]
enum Schedule {
    /// A cron pattern, in local time or UTC.
    Pattern { cron: Box<croner::Cron>, utc: bool },
    /// `@every`: a fixed delay from the previous tick, aligned to whole seconds.
    Every(Duration),
}

impl Schedule {
    /// Parses daprd's schedule syntax.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut s = text.trim();
        let mut utc = false;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (zone, pattern) = rest
                    .split_once(char::is_whitespace)
                    .ok_or("a time zone prefix needs a pattern after it")?;
                match zone {
                    "UTC" | "Etc/UTC" => utc = true,
                    "Local" => {}
                    other => {
                        return Err(format!(
                            "time zone '{other}' is not supported (only UTC and Local)"
                        ));
                    }
                }
                s = pattern.trim();
            }
        }
        if let Some(every) = s.strip_prefix("@every") {
            let every = every.trim();
            let d = parse_duration(every, Duration::from_secs)
                .ok_or_else(|| format!("'@every {every}' needs a Go duration such as 15s"))?;
            // robfig/cron: whole seconds, at least one.
            let secs = d.as_secs().max(1);
            if secs > 100 * 365 * 24 * 3600 {
                return Err(format!("'@every {every}' is longer than a hundred years"));
            }
            return Ok(Self::Every(Duration::from_secs(secs)));
        }
        let s = if s.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            s
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(s)
            .map_err(|e| e.to_string())?;
        Ok(Self::Pattern {
            cron: Box::new(cron),
            utc,
        })
    }

    /// The first tick after `now`.
    fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => {
                let base = now.timestamp();
                DateTime::from_timestamp(base + i64::try_from(d.as_secs()).ok()?, 0)
            }
            Self::Pattern { cron, utc: true } => cron.find_next_occurrence(&now, false).ok(),
            Self::Pattern { cron, utc: false } => cron
                .find_next_occurrence(&now.with_timezone(&Local), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    fn zone(&self) -> &'static str {
        match self {
            Self::Pattern { utc: true, .. } => "UTC",
            _ => "Local",
        }
    }
}

/// The `bindings.cron` input binding. See the module documentation.
#[derive(Debug)]
pub struct CronBinding {
    name: String,
    schedule: Schedule,
}

impl CronBinding {
    /// Factory: [`CronMetadata`]. Does no I/O.
    ///
    /// # Errors
    /// Invalid argument when `schedule` is missing or not a schedule daprd takes, naming why.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: CronMetadata = decode(spec)?;
        let text = meta
            .schedule
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "binding '{}' (type '{TYPE}'): metadata '{SCHEDULE_KEY}' is required \
                 (e.g. '@every 15s' or '0 30 * * * *')",
                    spec.name
                ))
            })?;
        let schedule = Schedule::parse(&text).map_err(|e| {
            Error::invalid(format!(
                "binding '{}' (type '{TYPE}'): invalid {SCHEDULE_KEY} '{text}': {e}",
                spec.name
            ))
        })?;
        Ok(Self {
            name: spec.name.clone(),
            schedule,
        })
    }
}

#[async_trait]
impl Component for CronBinding {}

#[async_trait]
impl OutputBinding for CronBinding {
    fn operations(&self) -> Vec<String> {
        Vec::new()
    }

    async fn invoke(&self, req: BindingRequest) -> Result<BindingResponse> {
        Err(Error::invalid(format!(
            "binding '{}' (type '{TYPE}') is an input binding and has no operation '{}'",
            self.name, req.operation
        )))
    }

    fn input(self: Arc<Self>) -> Option<Arc<dyn InputBinding>> {
        Some(self)
    }
}

#[async_trait]
impl InputBinding for CronBinding {
    async fn read(&self, handler: InputHandler) -> Result<Subscription> {
        let (schedule, name) = (self.schedule.clone(), self.name.clone());
        let task = tokio::spawn(async move {
            let mut now = Utc::now();
            loop {
                let Some(at) = schedule.next_after(now) else {
                    tracing::warn!(binding = %name, "schedule has no next tick; stopping");
                    return;
                };
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let fired = Utc::now();
                let event = InputEvent {
                    data: bytes::Bytes::new(),
                    metadata: Metadata::from([
                        ("timeZone".to_owned(), schedule.zone().to_owned()),
                        ("readTimeUTC".to_owned(), go_time_string(fired)),
                    ]),
                };
                if let Err(e) = handler(event).await {
                    tracing::debug!(binding = %name, error = %e, "cron tick not taken by the app");
                }
                // The next tick after this one (not after the delivery's end), so a slow
                // delivery skips the ticks it overran instead of firing them late.
                now = at.max(Utc::now() - chrono::Duration::milliseconds(1));
            }
        });
        Ok(Subscription::new(move || task.abort()))
    }
}

/// Go's `time.Time.String()` of a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`, the
/// fraction without trailing zeros (none at all for whole seconds).
fn go_time_string(t: DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_as_daprd_reads_them() {
        let next = |text: &str, now: &str| {
            Schedule::parse(&format!("CRON_TZ=UTC {text}"))
                .expect(text)
                .next_after(utc(now))
                .map(|t| t.to_rfc3339())
        };
        let at = "2024-05-01T12:00:07Z";
        assert_eq!(
            next("*/15 * * * * *", at).as_deref(),
            Some("2024-05-01T12:00:15+00:00")
        );
        assert_eq!(
            next("*/5 * * * *", at).as_deref(),
            Some("2024-05-01T12:05:00+00:00")
        );
        assert_eq!(
            next("0 30 3 * * *", at).as_deref(),
            Some("2024-05-02T03:30:00+00:00")
        );
        assert_eq!(
            next("@hourly", at).as_deref(),
            Some("2024-05-01T13:00:00+00:00")
        );
        assert_eq!(
            next("@midnight", at).as_deref(),
            Some("2024-05-02T00:00:00+00:00")
        );
        assert_eq!(
            next("@every 15s", at).as_deref(),
            Some("2024-05-01T12:00:22+00:00")
        );
        assert_eq!(
            next("@every 1h30m", at).as_deref(),
            Some("2024-05-01T13:30:07+00:00")
        );
        // Sub-second delays round up to one second, as robfig/cron's @every.
        assert_eq!(
            next("@every 10ms", at).as_deref(),
            Some("2024-05-01T12:00:08+00:00")
        );
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "@every",
            "@every soon",
            "@fortnightly",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} parses");
        }
        let e = Schedule::parse("CRON_TZ=Europe/Paris 0 * * * *").expect_err("zone");
        assert!(e.contains("'Europe/Paris' is not supported"), "{e}");
    }

    #[test]
    fn ticks_carry_daprd_metadata() {
        assert_eq!(
            go_time_string(utc("2024-05-01T12:00:00.500Z")),
            "2024-05-01 12:00:00.5 +0000 UTC"
        );
        assert_eq!(
            go_time_string(utc("2024-05-01T12:00:00Z")),
            "2024-05-01 12:00:00 +0000 UTC"
        );
        let spec = ComponentSpec::new("tick", TYPE);
        let e = CronBinding::from_spec(&spec).expect_err("no schedule");
        assert!(
            e.message.contains("'schedule' is required"),
            "{}",
            e.message
        );
        let spec = ComponentSpec::new("tick", TYPE).with(SCHEDULE_KEY, "every minute");
        let e = CronBinding::from_spec(&spec).expect_err("bad schedule");
        assert!(
            e.message.contains("invalid schedule 'every minute'"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn fires_every_second_until_dropped() {
        let spec = ComponentSpec::new("tick", TYPE).with(SCHEDULE_KEY, "@every 1s");
        let b = Arc::new(CronBinding::from_spec(&spec).expect("valid"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::<InputEvent>::new()));
        let s = seen.clone();
        let handler: InputHandler = Arc::new(move |ev| {
            s.lock().expect("seen").push(ev);
            Box::pin(async { Ok(bytes::Bytes::new()) })
        });
        let input = b.clone().input().expect("an input binding");
        let reader = input.read(handler).await.expect("reads");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(reader);
        let n = seen.lock().expect("seen").len();
        assert!((2..=3).contains(&n), "{n} ticks in 2.5 s");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            seen.lock().expect("seen").len(),
            n,
            "no tick after the drop"
        );
        let ev = seen.lock().expect("seen")[0].clone();
        assert_eq!(ev.metadata["timeZone"], "Local");
        assert!(ev.metadata["readTimeUTC"].ends_with(" +0000 UTC"));
        assert!(ev.data.is_empty());
        assert!(b.operations().is_empty());
    }
}
