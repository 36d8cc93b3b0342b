//! The "layotto-rs beside daprd" section of `bench/REPORT.md`, from what `versus.rs` measured.

use std::fmt::Write as _;

use crate::Args;
use crate::startup::percentile;
use crate::versus::{Measured, Run, StartUps};

/// The section's heading; `replace_section` finds it by this.
pub const HEADING: &str = "## layotto-rs beside daprd";

/// Everything measured, `[layotto-rs, daprd]` where a pair.
pub struct Figures<'a> {
    pub args: &'a Args,
    pub starts: &'a [StartUps],
    pub idle_rss: [f64; 2],
    /// `RssAnon`: the process's own memory, without the binary's pages.
    pub idle_anon: [f64; 2],
    pub rss_at_rate: [f64; 2],
    pub rss_sat: [f64; 2],
    pub sizes: [f64; 2],
    pub at_rate: &'a [(Run, Measured)],
    pub sat: &'a [(Run, Measured)],
}

const SIDECARS: [&str; 2] = ["layotto-rs", "daprd"];
/// The fixed-rate scenarios run by both sidecars, in report order.
const FIXED: [&str; 5] = [
    "GetState redis",
    "GetState in-memory",
    "SaveState redis",
    "PublishEvent redis",
    "GetState redis (metrics on)",
];
const SATURATED: [&str; 4] = [
    "GetState redis",
    "GetState in-memory",
    "SaveState redis",
    "PublishEvent redis",
];
const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

/// Targets of GetState on Redis at the fixed rate: (figure, bound).
const TARGET_ADDED_P50_MS: f64 = 0.15;
const TARGET_MCPU: f64 = 75.0;
const TARGET_US_PER_REQ: f64 = 15.0;
const TARGET_IDLE_RSS_MIB: f64 = 12.0;

fn find<'a>(rows: &'a [(Run, Measured)], scenario: &str, server: &str) -> Option<&'a Measured> {
    rows.iter()
        .find(|(r, _)| r.scenario == scenario && r.server == server)
        .map(|(_, m)| m)
}

/// A table row of one figure for both sidecars and their ratio.
fn pair_row(out: &mut String, figure: &str, v: [f64; 2], decimals: usize) {
    let _ = writeln!(
        out,
        "| {figure} | {:.d$} | {:.d$} | {:.2} |",
        v[0],
        v[1],
        v[0] / v[1],
        d = decimals
    );
}

/// Both sidecars' value of `f` for `scenario` in `rows`, when both ran it.
fn both(
    rows: &[(Run, Measured)],
    scenario: &str,
    f: impl Fn(&Measured) -> f64,
) -> Option<[f64; 2]> {
    Some([
        f(find(rows, scenario, SIDECARS[0])?),
        f(find(rows, scenario, SIDECARS[1])?),
    ])
}

/// Renders the section.
pub fn render(fig: &Figures<'_>) -> String {
    let a = fig.args;
    let mut s = format!(
        "{HEADING}\n\n\
Both sidecars through Dapr's gRPC API (`dapr.proto.runtime.v1.Dapr`) on one redis-server, \
started alike: daprd's command line, one resources directory (`state.redis`, \
`state.in-memory`, `pubsub.redis` with `maxLenApprox`), Kubernetes name resolution, \
`DAPR_HOST_IP=127.0.0.1`, metrics off except in the rows that say \"metrics on\" (both on). \
daprd is v1.14.0 as the test harness builds it (`-tags stablecomponents`). The floor is a \
minimal tonic server answering GetState with one Redis GET (same client crate and runtime as \
the sidecar); the direct GET is the load generator's own round trip to Redis. \
`layotto-bench --versus --daprd PATH` (`bench/src/versus.rs`).\n\n\
Fixed rate: {rate} req/s open loop, every run interleaved with the others in 1 s blocks, \
{secs} blocks each; service time from the actual send; CPU is the server process's (user + \
system, `/proc`). Saturation: {conc} closed-loop callers over {conns} HTTP/2 connections for \
{sat} s. {vs}-byte values. Ratios are layotto-rs / daprd: below 1 is better for every figure \
but throughput.\n\n\
### Ratios layotto-rs / daprd\n\n\
| figure | layotto-rs | daprd | ratio |\n|---|---|---|---|\n",
        rate = a.rate,
        secs = a.fixed_seconds,
        conc = a.concurrency,
        conns = a.conns,
        sat = a.seconds,
        vs = a.value_size,
    );
    for scenario in FIXED {
        for (q, name) in QUANTILES {
            if let Some(v) = both(fig.at_rate, scenario, |m| m.stats.service_ms(q)) {
                pair_row(
                    &mut s,
                    &format!("{scenario} at {} req/s, {name} ms", a.rate),
                    v,
                    3,
                );
            }
        }
        if let Some(v) = both(fig.at_rate, scenario, Measured::mcpu) {
            pair_row(
                &mut s,
                &format!("{scenario} at {} req/s, sidecar CPU (mCPU)", a.rate),
                v,
                0,
            );
        }
        if let Some(v) = both(fig.at_rate, scenario, Measured::switches_per_req) {
            pair_row(
                &mut s,
                &format!(
                    "{scenario} at {} req/s, sidecar context switches per request",
                    a.rate
                ),
                v,
                2,
            );
        }
    }
    for scenario in SATURATED {
        if let Some(v) = both(fig.sat, scenario, |m| m.stats.rate()) {
            pair_row(&mut s, &format!("{scenario} at saturation, req/s"), v, 0);
        }
        if let Some(v) = both(fig.sat, scenario, Measured::us_per_req) {
            pair_row(
                &mut s,
                &format!("{scenario} at saturation, sidecar CPU per request (µs)"),
                v,
                1,
            );
        }
        if let Some(v) = both(fig.sat, scenario, |m| m.stats.service_ms(0.99)) {
            pair_row(&mut s, &format!("{scenario} at saturation, p99 ms"), v, 3);
        }
    }
    let startup = |q: f64| {
        [
            percentile(&fig.starts[0].ms, q),
            percentile(&fig.starts[1].ms, q),
        ]
    };
    pair_row(
        &mut s,
        "start-up, exec -> first GetState answered, p50 ms",
        startup(0.5),
        1,
    );
    pair_row(
        &mut s,
        "start-up, exec -> first GetState answered, max ms",
        startup(1.0),
        1,
    );
    pair_row(&mut s, "RSS idle (MiB)", fig.idle_rss, 1);
    pair_row(
        &mut s,
        "of which anonymous (RssAnon, MiB; the rest is the binary's pages)",
        fig.idle_anon,
        1,
    );
    pair_row(
        &mut s,
        &format!("RSS after the {} req/s runs (MiB)", a.rate),
        fig.rss_at_rate,
        1,
    );
    pair_row(
        &mut s,
        "RSS after the saturation runs (MiB)",
        fig.rss_sat,
        1,
    );
    pair_row(&mut s, "binary size (MiB)", fig.sizes, 1);
    s.push('\n');
    floor_table(&mut s, fig);
    targets(&mut s, fig);
    s
}

/// GetState on Redis through each server beside the direct GET and the floor.
fn floor_table(s: &mut String, fig: &Figures<'_>) {
    let rate = fig.args.rate;
    let _ = write!(
        s,
        "### GetState on Redis against the floor\n\n\
| server | p50 ms | p90 ms | p99 ms | p99.9 ms | p50 over direct GET | CPU at {rate} req/s (mCPU) | context switches per request at {rate} req/s | saturation req/s | CPU per request at saturation (µs) |\n\
|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let direct =
        find(fig.at_rate, "GetState redis", "direct").map_or(0.0, |m| m.stats.service_ms(0.5));
    for (server, label) in [
        ("direct", "direct Redis GET (baseline)"),
        ("floor", "tonic + one Redis GET (floor)"),
        ("layotto-rs", "layotto-rs"),
        ("daprd", "daprd"),
    ] {
        let Some(m) = find(fig.at_rate, "GetState redis", server) else {
            continue;
        };
        let sat = find(fig.sat, "GetState redis", server);
        let (cpu, switches) = if server == "direct" {
            (String::new(), String::new())
        } else {
            (
                format!("{:.0}", m.mcpu()),
                format!("{:.2}", m.switches_per_req()),
            )
        };
        let _ = writeln!(
            s,
            "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.3} | {cpu} | {switches} | {} | {} |",
            m.stats.service_ms(0.5),
            m.stats.service_ms(0.9),
            m.stats.service_ms(0.99),
            m.stats.service_ms(0.999),
            m.stats.service_ms(0.5) - direct,
            sat.map_or(String::new(), |m| format!("{:.0}", m.stats.rate())),
            sat.map_or(String::new(), |m| format!("{:.1}", m.us_per_req())),
        );
    }
    s.push('\n');
}

/// The performance issue's targets for GetState on Redis.
fn targets(s: &mut String, fig: &Figures<'_>) {
    let rate = fig.args.rate;
    let get = |server| find(fig.at_rate, "GetState redis", server);
    let added = match (get("layotto-rs"), get("direct")) {
        (Some(l), Some(d)) => l.stats.service_ms(0.5) - d.stats.service_ms(0.5),
        _ => f64::NAN,
    };
    let mcpu = get("layotto-rs").map_or(f64::NAN, Measured::mcpu);
    let us = find(fig.sat, "GetState redis", "layotto-rs").map_or(f64::NAN, Measured::us_per_req);
    let verdict = |v: f64, bound: f64| if v <= bound { "met" } else { "missed" };
    let _ = write!(
        s,
        "### Targets (GetState on Redis, layotto-rs)\n\n\
| figure | value | target | |\n|---|---|---|---|\n\
| added p50 over a direct GET at {rate} req/s | {added:.3} ms | <= {TARGET_ADDED_P50_MS} ms | {} |\n\
| sidecar CPU at {rate} req/s | {mcpu:.0} mCPU | <= {TARGET_MCPU} mCPU | {} |\n\
| sidecar CPU per request at saturation | {us:.1} µs | <= {TARGET_US_PER_REQ} µs | {} |\n\
| idle RSS | {rss:.1} MiB | <= {TARGET_IDLE_RSS_MIB} MiB | {} |\n\n",
        verdict(added, TARGET_ADDED_P50_MS),
        verdict(mcpu, TARGET_MCPU),
        verdict(us, TARGET_US_PER_REQ),
        verdict(fig.idle_rss[0], TARGET_IDLE_RSS_MIB),
        rss = fig.idle_rss[0],
    );
}
