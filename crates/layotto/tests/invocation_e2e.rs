//! Service invocation between sidecars: three layotto-rs sidecars (apps `a`, `b`, `c`), started
//! as daprd is, find each other through Dapr's SQLite name resolution (one shared file) and call
//! each other over Dapr's internal protocol (`dapr.proto.internals.v1.ServiceInvocation` on
//! `--dapr-internal-grpc-port`).
//!
//! A client calls `b` through `a`'s sidecar; `b`'s app relays to `c` through its own sidecar
//! (A -> B -> C). Verb, path, query, headers, status and body cross each hop; the callee app
//! learns who called (`dapr-caller-app-id`, `dapr-callee-app-id`); bodies of 20 MiB cross;
//! gRPC `InvokeService`, the `dapr-app-id` header and namespaced ids take the same path; an
//! unknown or malformed id is daprd's 500 `ERR_DIRECT_INVOKE` at once; 10,000 calls through
//! three sidecars all arrive.
#![allow(missing_docs)]

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;

use futures::StreamExt as _;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as dapr;
use support::daprd::Daprd;
use support::invoke_app::invoke_request;
use support::invoke_app::sqlite_resolution;
use support::invoke_app::{App, app, check_pattern, pattern_body, peak_rss_mib};

/// A sidecar for app `id` (with `app` behind it, if any), registered in the file `db`, with
/// environment `env`, taking bodies of up to 32 MiB.
fn sidecar(id: &str, app: Option<&App>, db: &std::path::Path, env: &[(&str, &str)]) -> Daprd {
    sidecar_taking(id, app, db, env, "32Mi")
}

/// [`sidecar`] with `--max-body-size` `max_body`.
fn sidecar_taking(
    id: &str,
    app: Option<&App>,
    db: &std::path::Path,
    env: &[(&str, &str)],
    max_body: &str,
) -> Daprd {
    let app_port = app.map(|a| a.port.to_string());
    let mut args = vec![
        "--app-id",
        id,
        "--config",
        "{dir}/config.yaml",
        "--dapr-internal-grpc-port",
        "{internal}",
        "--dapr-internal-grpc-listen-address",
        "127.0.0.1",
        "--max-body-size",
        max_body,
    ];
    if let Some(p) = &app_port {
        args.extend(["--app-port", p]);
    }
    let cfg = sqlite_resolution(db);
    let d = Daprd::start(&[("config.yaml", &cfg)], &args, env, None);
    if let Some(a) = app {
        a.sidecar.set(d.http).expect("set once");
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_sidecars_invoke_each_other_through_sqlite_name_resolution() {
    let shared = tempfile::tempdir().expect("tempdir");
    let db = shared.path().join("nr.db");
    let (b_app, c_app) = (app("b").await, app("c").await);
    // a's API wants a token, which never travels further; c's sidecar sends c's app its own.
    let a = sidecar("a", None, &db, &[("DAPR_API_TOKEN", "a-secret")]);
    let _b = sidecar("b", Some(&b_app), &db, &[]);
    let _c = sidecar("c", Some(&c_app), &db, &[("APP_API_TOKEN", "c-app-secret")]);
    let _ = support::http();
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::HeaderName::from_static("dapr-api-token"),
                reqwest::header::HeaderValue::from_static("a-secret"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{}", a.http);

    // A -> B -> C, keeping verb, path, query, headers, status and body.
    let r = http
        .put(format!(
            "{base}/v1.0/invoke/b/method/relay/c/orders/7?x=1&y=2"
        ))
        .header("x-custom", "kept")
        .body("hello")
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.text().await.expect("body"),
        "b>c:PUT /orders/7?x=1&y=2:hello"
    );
    let at_b = b_app
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("b called");
    assert_eq!(at_b.method, Method::PUT);
    assert_eq!(at_b.headers["x-custom"], "kept");
    assert_eq!(at_b.headers["dapr-caller-app-id"], "a");
    assert_eq!(at_b.headers["dapr-callee-app-id"], "b");
    let at_c = c_app
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("c called");
    assert_eq!(at_c.uri.to_string(), "/orders/7?x=1&y=2");
    assert_eq!(at_c.headers["dapr-caller-app-id"], "b");
    assert_eq!(at_c.headers["dapr-callee-app-id"], "c");
    assert!(
        at_b.headers.get("dapr-api-token").is_none(),
        "a's token reached b"
    );
    assert_eq!(at_c.headers["dapr-api-token"], "c-app-secret");

    // The callee's headers, content type and error statuses come back as the app sent them.
    let r = http
        .get(format!("{base}/v1.0/invoke/c/method/echo"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-app"], "c");
    assert_eq!(r.headers()["content-type"], "text/x-echo");
    let r = http
        .post(format!("{base}/v1.0/invoke/c/method/status/418"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 418);
    assert_eq!(r.text().await.expect("body"), "c says 418 I'm a teapot");

    // The dapr-app-id header on any path, the path cleaned as daprd cleans it.
    let r = http
        .delete(format!("{base}/a/../items/./9?z=3"))
        .header("dapr-app-id", "c")
        .send()
        .await
        .expect("invoke by header");
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().await.expect("body"), "c:DELETE /items/9?z=3:");

    // Unknown and malformed ids: daprd's 500 ERR_DIRECT_INVOKE, promptly.
    for (id, says) in [
        ("nobody", "no host found with the given ID"),
        ("a.b.c", "invalid app id a.b.c"),
        ("c.", "invalid app id c."),
    ] {
        let started = Instant::now();
        let r = http
            .post(format!("{base}/v1.0/invoke/{id}/method/x"))
            .send()
            .await
            .expect("invoke");
        assert_eq!(r.status(), 500, "{id}");
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
        assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.starts_with(&format!("failed to invoke, id: {id}, err: "))
                && message.contains(says),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{id}: {:?}",
            started.elapsed()
        );
    }

    // 20 MiB each way.
    let big = vec![b'x'; 20 << 20];
    let r = http
        .post(format!("{base}/v1.0/invoke/c/method/size"))
        .body(big)
        .send()
        .await
        .expect("big request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), (20 << 20).to_string());
    let r = http
        .get(format!("{base}/v1.0/invoke/c/method/big"))
        .send()
        .await
        .expect("big answer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").len(), 20 << 20);
    // Over --max-body-size: refused, not hung.
    let r = http
        .post(format!("{base}/v1.0/invoke/c/method/size"))
        .body(vec![b'x'; 33 << 20])
        .send()
        .await;
    // The sidecar answers 413 from the Content-Length without reading the body, so the client
    // may see the answer, or the connection closed under its upload: never a hang.
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "refused while uploading: {e:?}"),
    }

    // Dapr gRPC InvokeService from a's sidecar reaches c.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", a.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc =
        dapr::dapr_client::DaprClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("dapr-api-token", "a-secret".parse().expect("token"));
            Ok(r)
        });
    let answer = grpc
        .invoke_service(invoke_request(
            "c",
            "grpc/path",
            common::http_extension::Verb::Patch,
            "q=1",
            b"over grpc",
        ))
        .await
        .expect("InvokeService")
        .into_inner();
    assert_eq!(
        answer.data.expect("data").value,
        b"c:PATCH /grpc/path?q=1:over grpc"
    );

    // 10,000 calls through a -> b -> c, 64 at a time: every one arrives and answers.
    let before = c_app.seen.lock().expect("lock").len();
    let started = Instant::now();
    let calls = futures::stream::iter(0..10_000u32).map(|i| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/v1.0/invoke/b/method/relay/c/n"))
                .body(i.to_string())
                .send()
                .await
                .expect("call");
            assert_eq!(r.status(), 201, "call {i}");
            assert_eq!(r.text().await.expect("body"), format!("b>c:POST /n?:{i}"));
        }
    });
    calls.buffer_unordered(64).collect::<Vec<()>>().await;
    let took = started.elapsed();
    assert_eq!(c_app.seen.lock().expect("lock").len() - before, 10_000);
    println!(
        "10,000 calls a -> b -> c in {took:?}: {:.0} calls/s",
        10_000.0 / took.as_secs_f64()
    );
}

/// Bodies far larger than a sidecar's memory use cross two sidecars both ways: each sidecar
/// passes them on as they arrive (HTTP API -> `CallLocalStream` -> app channel and back), so
/// its peak resident memory grows by much less than the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_bodies_stream_through_sidecars_without_being_held() {
    const MIB: usize = 256;
    let shared = tempfile::tempdir().expect("tempdir");
    let db = shared.path().join("nr.db");
    let b_app = app("b").await;
    let a = sidecar_taking("a", None, &db, &[], "1Gi");
    let b = sidecar_taking("b", Some(&b_app), &db, &[], "1Gi");
    let http = support::http();
    let base = format!("http://127.0.0.1:{}", a.http);
    // Warm both paths up so that the peaks below are the transfers' own.
    let r = http
        .post(format!("{base}/v1.0/invoke/b/method/drain"))
        .body(pattern_body(1))
        .send()
        .await
        .expect("warm-up");
    assert_eq!(r.text().await.expect("body"), format!("{} ok", 1 << 20));
    let before = (peak_rss_mib(a.child.id()), peak_rss_mib(b.child.id()));

    // Up: the app sees every byte in order.
    let r = http
        .post(format!("{base}/v1.0/invoke/b/method/drain"))
        .body(pattern_body(MIB))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), format!("{} ok", MIB << 20));

    // Down: the client sees every byte in order.
    let r = http
        .get(format!("{base}/v1.0/invoke/b/method/stream/{MIB}"))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), 200);
    let chunks = futures::stream::unfold(r, |mut r| async move {
        match r.chunk().await {
            Ok(Some(c)) => Some((Ok(c), r)),
            Ok(None) => None,
            Err(e) => Some((Err(e.to_string()), r)),
        }
    });
    let (len, wrong) = check_pattern(Box::pin(chunks)).await;
    assert_eq!((len, wrong), (MIB << 20, None));

    let after = (peak_rss_mib(a.child.id()), peak_rss_mib(b.child.id()));
    eprintln!("peak RSS MiB before/after {MIB} MiB each way: a {before:?}/{after:?} (a, b)");
    for (name, was, is) in [("a", before.0, after.0), ("b", before.1, after.1)] {
        assert!(
            is - was < 64,
            "sidecar {name}'s peak RSS grew from {was} to {is} MiB passing {MIB} MiB bodies: \
             they were held, not streamed"
        );
    }
}
