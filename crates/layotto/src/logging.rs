//! Logs on stderr: `tracing`'s text lines, or with `--log-as-json` one JSON object per line with
//! daprd's fields (`dapr/kit:logger/dapr_logger.go`): `time` (RFC 3339, nanoseconds, UTC),
//! `level`, `msg`, `scope`, `app_id`, `instance` (the host name), `type` (`log`), `ver`, plus
//! each field the event carries.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Starts logging: `RUST_LOG`'s filter when set, else `level`; JSON lines for `json`.
pub fn init(level: &str, json: bool, app_id: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .event_format(DaprJson {
                app_id: app_id.to_owned(),
                instance: hostname(),
            })
            .try_init()
    } else {
        builder.try_init()
    };
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// daprd's JSON log line.
struct DaprJson {
    app_id: String,
    instance: String,
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    msg: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.msg);
        } else {
            self.extra
                .insert(field.name().to_owned(), serde_json::Value::from(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra
            .insert(field.name().to_owned(), serde_json::Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra
            .insert(field.name().to_owned(), serde_json::Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra
            .insert(field.name().to_owned(), serde_json::Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = text;
        } else {
            self.extra
                .insert(field.name().to_owned(), serde_json::Value::from(text));
        }
    }
}

impl<S, N> FormatEvent<S, N> for DaprJson
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
        };
        let mut line = fields.extra;
        line.insert(
            "time".into(),
            rfc3339_nanos(std::time::SystemTime::now()).into(),
        );
        line.insert("level".into(), level.into());
        line.insert("msg".into(), fields.msg.into());
        line.insert("scope".into(), scope(meta.target()).into());
        line.insert("app_id".into(), self.app_id.clone().into());
        line.insert("instance".into(), self.instance.clone().into());
        line.insert("type".into(), "log".into());
        line.insert("ver".into(), env!("CARGO_PKG_VERSION").into());
        let text = serde_json::Value::Object(line).to_string();
        writeln!(writer, "{text}")
    }
}

/// A `tracing` target as a Dapr scope: `layotto_runtime::health` -> `layotto.runtime.health`;
/// targets that are already scopes (`dapr.runtime.http-info`) stay.
fn scope(target: &str) -> String {
    target.replace("::", ".").replace('_', ".")
}

/// `t` as RFC 3339 with nanoseconds in UTC (`2026-12-02T13:28:47.123456789Z`), Go's
/// `time.RFC3339Nano` without trailing-zero trimming.
fn rfc3339_nanos(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::with_capacity(30);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_scope() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_796_218_127, 5);
        assert_eq!(rfc3339_nanos(t), "2026-12-02T13:28:47.000000005Z");
        assert_eq!(
            rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(scope("layotto_runtime::health"), "layotto.runtime.health");
        assert_eq!(scope("dapr.runtime.http-info"), "dapr.runtime.http-info");
    }
}
