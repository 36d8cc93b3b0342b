//! `layotto-bench --broker-faults [--fault-messages N]`: each broker (NATS JetStream, Kafka,
//! RabbitMQ, Mosquitto) is killed and started again while N messages (default 10,000) flow to
//! a consumer group of two members (components, as two sidecars have; Mosquitto: one
//! subscriber, as its test explains), through
//! `layotto_conformance::broker_fault::survives_broker_restart`, which fails unless every
//! message the broker acknowledged is delivered. Reports the duplicates and the publish
//! attempts that failed during the restart; the section "Brokers: restart under load" of
//! `--report` is replaced.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use layotto_conformance::broker_fault::{FaultReport, kill_then_start, survives_broker_restart};
use layotto_core::ComponentSpec;
use layotto_core::pubsub::PubSub;
use layotto_test_support::{KafkaServer, MosquittoServer, NatsServer, RabbitMqServer};

use crate::Args;

/// One row: the broker, how it was stopped, what the run saw and how long it took.
struct Row {
    broker: &'static str,
    stop: &'static str,
    report: FaultReport,
    secs: f64,
}

/// A component of `type_` with `pairs`, initialised.
async fn component(type_: &str, pairs: &[(&str, String)]) -> Result<Arc<dyn PubSub>, String> {
    let mut spec = ComponentSpec::new("broker", type_);
    for (k, v) in pairs {
        spec = spec.with(*k, v.clone());
    }
    let c = crate::brokers::component_of(&spec)?;
    c.init().await.map_err(|e| e.to_string())?;
    Ok(c)
}

/// `count` members and a publisher, each a component of its own.
async fn components(
    type_: &str,
    pairs: &[(&str, String)],
    count: usize,
) -> Result<(Vec<Arc<dyn PubSub>>, Arc<dyn PubSub>), String> {
    let mut members = Vec::new();
    for _ in 0..count {
        members.push(component(type_, pairs).await?);
    }
    Ok((members, component(type_, pairs).await?))
}

/// A CloudEvent with id `m-<i>`: JetStream takes its id as `Nats-Msg-Id`, so a publish retried
/// after a lost acknowledgement is stored once.
fn ce(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"specversion":"1.0","id":"m-{i}","data":"x"}}"#
    ))
}

fn plain(i: usize) -> Bytes {
    Bytes::from(format!("m-{i}"))
}

/// Runs every broker in turn and replaces the report's section.
pub async fn run(args: &Args) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = args.fault_messages;
    let mut rows = Vec::new();
    {
        let nats = NatsServer::start();
        crate::brokers::create_stream(&nats, "FAULT", &["fault.>"]).await?;
        let pairs = [
            ("natsURL", nats.url()),
            ("concurrency", "parallel".into()),
            ("ackWait", "5s".into()),
        ];
        let (members, publisher) = components("jetstream", &pairs, 2).await?;
        let server = Arc::new(Mutex::new(nats));
        let restart = kill_then_start(Arc::clone(&server), NatsServer::kill, NatsServer::restart);
        let started = Instant::now();
        let report =
            survives_broker_restart(&*publisher, &members, "fault.load", "app", n, ce, restart)
                .await;
        rows.push(row("NATS JetStream", "SIGKILL", report, started));
    }
    {
        let kafka = KafkaServer::start();
        let pairs = [("brokers", kafka.addr()), ("authType", "none".into())];
        let (members, publisher) = components("kafka", &pairs, 2).await?;
        let server = Arc::new(Mutex::new(kafka));
        let restart = kill_then_start(Arc::clone(&server), KafkaServer::kill, KafkaServer::restart);
        let started = Instant::now();
        let report =
            survives_broker_restart(&*publisher, &members, "fault", "app", n, plain, restart).await;
        rows.push(row("Kafka", "SIGKILL", report, started));
    }
    {
        let rabbit = RabbitMqServer::start();
        let pairs = [
            ("connectionString", rabbit.url()),
            ("deliveryMode", "2".into()),
            ("deletedWhenUnused", "false".into()),
            ("reconnectWaitSeconds", "1".into()),
        ];
        let (members, publisher) = components("rabbitmq", &pairs, 2).await?;
        let server = Arc::new(Mutex::new(rabbit));
        let restart = kill_then_start(
            Arc::clone(&server),
            RabbitMqServer::kill,
            RabbitMqServer::restart,
        );
        let started = Instant::now();
        let report =
            survives_broker_restart(&*publisher, &members, "fault", "app", n, plain, restart).await;
        rows.push(row("RabbitMQ", "SIGKILL", report, started));
    }
    {
        let mosquitto = MosquittoServer::start();
        let id = |who: &str| format!("fault-{who}-{}", std::process::id());
        let member = component(
            "mqtt3",
            &[("url", mosquitto.url()), ("consumerID", id("member"))],
        )
        .await?;
        let publisher = component(
            "mqtt3",
            &[("url", mosquitto.url()), ("consumerID", id("publisher"))],
        )
        .await?;
        let server = Arc::new(Mutex::new(mosquitto));
        // SIGTERM (Mosquitto saves its state then); `restart` sends it.
        let restart = kill_then_start(Arc::clone(&server), |_| (), MosquittoServer::restart);
        let started = Instant::now();
        let report = survives_broker_restart(
            &*publisher,
            &[member],
            "fault/load",
            "app",
            n,
            plain,
            restart,
        )
        .await;
        rows.push(row("Mosquitto (MQTT)", "SIGTERM", report, started));
    }
    let section = render(&rows, n);
    print!("{section}");
    if let Some(path) = &args.report {
        crate::invocation::replace_section(path, "## Brokers: restart under load", &section)?;
    }
    Ok(())
}

fn row(broker: &'static str, stop: &'static str, report: FaultReport, started: Instant) -> Row {
    eprintln!("broker faults: {broker}: {report}");
    Row {
        broker,
        stop,
        report,
        secs: started.elapsed().as_secs_f64(),
    }
}

fn render(rows: &[Row], n: usize) -> String {
    let mut s = format!(
        "## Brokers: restart under load\n\n{n} messages per broker, published one after the \
         other (each retried until the broker acknowledged it) to a consumer group of two \
         members (Mosquitto: one subscriber with a persistent session), the broker stopped \
         and started again when half were acknowledged (`layotto-bench --broker-faults`; \
         `bench/src/faults.rs`). A run fails unless every acknowledged message is delivered, \
         so \"delivered\" is always all of them.\n\n\
         | broker | stopped with | acknowledged | delivered | delivered twice | failed publish attempts | seconds |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | all | {} | {} | {:.1} |\n",
            r.broker,
            r.stop,
            r.report.acknowledged,
            r.report.duplicates,
            r.report.failed_attempts,
            r.secs
        ));
    }
    s.push('\n');
    s
}
