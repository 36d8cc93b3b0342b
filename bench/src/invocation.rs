//! `layotto-bench --invocation [--daprd PATH]`: service invocation, hop by hop, beside daprd.
//!
//! An HTTP echo app (this binary with `--http-echo PORT`, its own process) sits behind sidecar
//! `b`; sidecar `a` has no app. Open loop at `--rate` for `--fixed-seconds`, one scenario at a
//! time: the app directly, `b`'s own app through `b` (one hop: sidecar -> app), and `b`'s app
//! through `a` (two hops: sidecar -> sidecar -> app), for a layotto-rs pair and a daprd pair
//! started alike (Kubernetes name resolution whose `template` names `b`'s internal port, so no
//! multicast; metrics on). The figures replace the "Service invocation" section of `--report`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;

use crate::Args;
use crate::load::{Op, Stats, cpu_seconds, open_loop};
use crate::scenarios::Proc;
use crate::startup::free_port;

/// Serves `POST /echo` (answers the body) on `127.0.0.1:port` until killed.
pub async fn serve_http_echo(port: u16) -> Result<(), String> {
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    axum::serve(l, app).await.map_err(|e| e.to_string())
}

/// A sidecar pair: `a` (caller) and `b` (in front of the app).
struct Pair {
    a: Proc,
    a_http: u16,
    b: Proc,
    b_http: u16,
    _dir: PathBuf,
}

fn start(
    bin: &Path,
    id: &str,
    dir: &Path,
    app: Option<u16>,
    target: u16,
) -> Result<(Proc, u16, u16), String> {
    let (http, grpc, internal, metrics) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let cfg = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bench\nspec:\n  \
             nameResolution:\n    component: kubernetes\n    configuration:\n      template: \
             \"127.0.0.1:{target}\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let internal = if id == "b" { target } else { internal };
    let mut cmd = daprd_command(bin, id, &cfg, [http, grpc, internal, metrics]);
    cmd.args(["--dapr-internal-grpc-listen-address", "127.0.0.1"]);
    if let Some(p) = app {
        cmd.args(["--app-port", &p.to_string()]);
    }
    let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok((Proc(child), http, internal))
}

/// daprd's command line as either sidecar takes it: `app_id`, the Configuration `cfg`, ports
/// `[http, grpc, internal gRPC, metrics]`, API listeners on loopback, warn logs;
/// `DAPR_HOST_IP=127.0.0.1` (no outside address probe), no namespace; output discarded.
pub fn daprd_command(bin: &Path, app_id: &str, cfg: &Path, ports: [u16; 4]) -> Command {
    let [http, grpc, internal, metrics] = ports.map(|p| p.to_string());
    let mut cmd = Command::new(bin);
    cmd.args(["--app-id", app_id, "--config"])
        .arg(cfg)
        .args(["--dapr-http-port", &http])
        .args(["--dapr-grpc-port", &grpc])
        .args(["--dapr-internal-grpc-port", &internal])
        .args(["--metrics-port", &metrics])
        .args([
            "--dapr-listen-addresses",
            "127.0.0.1",
            "--log-level",
            "warn",
        ])
        .env("DAPR_HOST_IP", "127.0.0.1")
        .env("NAMESPACE", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

async fn healthy(port: u16, client: &reqwest::Client) -> Result<(), String> {
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/v1.0/healthz"))
            .send()
            .await
            && r.status().as_u16() == 204
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no healthy sidecar on {port} within 30 s"))
}

async fn pair(bin: &Path, app: u16, client: &reqwest::Client) -> Result<Pair, String> {
    let dir = std::env::temp_dir().join(format!(
        "layotto-bench-inv-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let b_internal = free_port()?;
    let (b, b_http, _) = start(bin, "b", &dir, Some(app), b_internal)?;
    let (a, a_http, _) = start(bin, "a", &dir, None, b_internal)?;
    healthy(b_http, client).await?;
    healthy(a_http, client).await?;
    Ok(Pair {
        a,
        a_http,
        b,
        b_http,
        _dir: dir,
    })
}

fn post(client: reqwest::Client, url: String, body: Arc<Vec<u8>>) -> Op {
    Arc::new(move |_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let r = client
                .post(url)
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let got = r.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() || got.len() != body.len() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&got)));
            }
            Ok(())
        }
        .boxed()
    })
}

struct Row {
    name: String,
    stats: Stats,
    /// mCPU of the sidecars in the path during the run.
    mcpu: Option<f64>,
}

async fn measure(name: &str, op: Op, args: &Args, pids: &[u32]) -> Result<Row, String> {
    let before: f64 = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .sum::<Result<f64, _>>()?;
    let stats = open_loop(op, args.rate, Duration::from_secs(args.fixed_seconds)).await;
    let after: f64 = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .sum::<Result<f64, _>>()?;
    let mcpu = (!pids.is_empty()).then(|| (after - before) / stats.elapsed.as_secs_f64() * 1000.0);
    if stats.errors > 0 {
        return Err(format!(
            "{name}: {} errors, first: {}",
            stats.errors,
            stats.first_error.clone().unwrap_or_default()
        ));
    }
    Ok(Row {
        name: name.to_owned(),
        stats,
        mcpu,
    })
}

/// Runs the invocation scenarios and writes their section into `args.report`.
///
/// # Errors
/// A process that does not start, an error in any request.
pub async fn run(args: &Args, daprd: Option<&Path>) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let app_port = free_port()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let _app = Proc(
        Command::new(exe)
            .args(["--http-echo", &app_port.to_string()])
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let body = Arc::new(vec![b'x'; args.value_size]);
    let mut rows = Vec::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rows.push(
        measure(
            "app directly (baseline)",
            post(
                client.clone(),
                format!("http://127.0.0.1:{app_port}/echo"),
                body.clone(),
            ),
            args,
            &[],
        )
        .await?,
    );
    let mut sidecars = vec![("layotto-rs", args.bin.clone())];
    if let Some(d) = daprd {
        sidecars.push(("daprd", d.to_path_buf()));
    }
    for (label, bin) in &sidecars {
        let p = pair(bin, app_port, &client).await?;
        let (a_pid, b_pid) = (p.a.0.id(), p.b.0.id());
        // Warm the connections and name resolution.
        let warm = post(
            client.clone(),
            format!("http://127.0.0.1:{}/v1.0/invoke/b/method/echo", p.a_http),
            body.clone(),
        );
        for i in 0..200 {
            warm(i).await.map_err(|e| format!("{label} warm-up: {e}"))?;
        }
        rows.push(
            measure(
                &format!("{label}: one hop (b -> app)"),
                post(
                    client.clone(),
                    format!("http://127.0.0.1:{}/v1.0/invoke/b/method/echo", p.b_http),
                    body.clone(),
                ),
                args,
                &[b_pid],
            )
            .await?,
        );
        rows.push(
            measure(
                &format!("{label}: two hops (a -> b -> app)"),
                post(
                    client.clone(),
                    format!("http://127.0.0.1:{}/v1.0/invoke/b/method/echo", p.a_http),
                    body.clone(),
                ),
                args,
                &[a_pid, b_pid],
            )
            .await?,
        );
    }
    let section = render(&rows, args);
    print!("{section}");
    if let Some(report) = &args.report {
        replace_section(report, "## Service invocation", &section)?;
    }
    Ok(())
}

fn render(rows: &[Row], args: &Args) -> String {
    let mut s = format!(
        "## Service invocation\n\nHTTP `POST /v1.0/invoke/b/method/echo` with a {}-byte body, open loop at {} req/s for {} s per row (`layotto-bench --invocation --daprd PATH`; daprd v1.14.0 as the test harness builds it, `-tags stablecomponents`). Sidecar `a` reaches `b` over Dapr's internal gRPC API (`CallLocalStream`); both pairs resolve `b` with Kubernetes name resolution's `template`. Service time from the actual send; CPU of the sidecars in the path.\n\n| path | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | sidecar CPU (mCPU) |\n|---|---|---|---|---|---|---|\n",
        args.value_size, args.rate, args.fixed_seconds
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} |\n",
            r.name,
            r.stats.rate(),
            r.stats.service_ms(0.5),
            r.stats.service_ms(0.9),
            r.stats.service_ms(0.99),
            r.stats.service_ms(0.999),
            r.mcpu.map_or(String::new(), |m| format!("{m:.0}"))
        ));
    }
    let p50 = |name: &str| {
        rows.iter()
            .find(|r| r.name.contains(name))
            .map(|r| r.stats.service_ms(0.5))
    };
    s.push_str("\nLatency added by each hop (differences of p50s):\n\n");
    let direct = p50("baseline").unwrap_or_default();
    for label in ["layotto-rs", "daprd"] {
        if let (Some(one), Some(two)) =
            (p50(&format!("{label}: one")), p50(&format!("{label}: two")))
        {
            s.push_str(&format!(
                "- {label}: sidecar -> app +{:.3} ms; sidecar -> sidecar +{:.3} ms\n",
                one - direct,
                two - one
            ));
        }
    }
    s.push('\n');
    s
}

/// Replaces the section starting at `heading` (up to the next `## `) in `path`, or appends it.
pub fn replace_section(path: &Path, heading: &str, section: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let out = match text.find(heading) {
        Some(start) => {
            let rest = &text[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(text.len(), |i| start + heading.len() + i + 1);
            format!("{}{}{}", &text[..start], section, &text[end..])
        }
        None => format!("{}\n{section}", text.trim_end()),
    };
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}
