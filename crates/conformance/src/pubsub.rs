//! Suite of the [`PubSub`] contract: delivery, redelivery after a handler error, competing
//! consumers within a group, fan-out across groups, and hand-over of unacknowledged messages
//! when a subscription is dropped.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use layotto_core::pubsub::{
    CONSUMER_ID_KEY, Handler, Message, PubSub, SubscribeRequest, Subscription,
};
use layotto_core::{Error, Feature, Metadata};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::run::SuiteRun;
use crate::{unique, within};

/// How long a delivery (or a batch of them) may take.
const WAIT: Duration = Duration::from_secs(10);

/// The features this suite has cases for: none yet (no cases for `MESSAGE_TTL`,
/// `SUBSCRIBE_WILDCARDS` or `BULK_PUBSUB`); a component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// Runs every case of this suite, each against a fresh component from `factory`.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn PubSub>>,
{
    run_suite(factory, None).await;
}

/// [`run_all`] for a broker whose protocol cannot give an unacknowledged message back (MQTT
/// 3.1.1 has no negative acknowledgement: the message stays with its session): the hand-over
/// case is skipped and printed as skipped with `why`.
///
/// # Panics
/// As [`run_all`].
pub async fn run_all_without_handover<F, Fut>(factory: F, why: &str)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn PubSub>>,
{
    run_suite(factory, Some(why)).await;
}

async fn run_suite<F, Fut>(factory: F, no_handover: Option<&str>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn PubSub>>,
{
    let mut run = SuiteRun::start("pubsub", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("pubsub::publish_receive", async {
        publish_receive(&*f().await).await;
    })
    .await;
    run.case("pubsub::redelivery_after_error", async {
        redelivery_after_error(&*f().await).await;
    })
    .await;
    run.case("pubsub::competing_consumers", async {
        competing_consumers(&*f().await).await;
    })
    .await;
    run.case("pubsub::fan_out", async {
        fan_out(&*f().await).await;
    })
    .await;
    match no_handover {
        Some(why) => run.skip("pubsub::unacked_goes_to_other_member", why),
        None => {
            run.case("pubsub::unacked_goes_to_other_member", async {
                unacked_goes_to_other_member(&*f().await).await;
            })
            .await;
        }
    }
    run.finish();
}

fn msg(topic: &str, data: impl Into<Bytes>) -> Message {
    Message {
        topic: topic.to_owned(),
        data: data.into(),
        metadata: Metadata::new(),
    }
}

async fn publish(ps: &dyn PubSub, topic: &str, data: impl Into<Bytes>, case: &str) {
    ps.publish(msg(topic, data))
        .await
        .unwrap_or_else(|e| panic!("{case}: publish to '{topic}' failed: {e}"));
}

async fn subscribe(
    ps: &dyn PubSub,
    topic: &str,
    group: &str,
    handler: Handler,
    case: &str,
) -> Subscription {
    let mut metadata = Metadata::new();
    metadata.insert(CONSUMER_ID_KEY.into(), group.to_owned());
    let req = SubscribeRequest {
        topic: topic.to_owned(),
        metadata,
    };
    ps.subscribe(req, handler)
        .await
        .unwrap_or_else(|e| panic!("{case}: subscribe to '{topic}' as '{group}' failed: {e}"))
}

/// A handler that acknowledges every message after `delay` and sends its payload to `tx`.
fn collector(tx: UnboundedSender<Bytes>, delay: Duration) -> Handler {
    Arc::new(move |m: Message| {
        let tx = tx.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = tx.send(m.data);
            Ok(())
        }
        .boxed()
    })
}

async fn recv(rx: &mut UnboundedReceiver<Bytes>, what: &str) -> Bytes {
    within(WAIT, what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: handler channel closed"))
}

/// A published message reaches a subscriber with its payload.
pub async fn publish_receive(ps: &dyn PubSub) {
    let case = "pubsub::publish_receive";
    let (topic, group) = (unique("topic"), unique("group"));
    let (tx, mut rx) = unbounded_channel();
    let _sub = subscribe(ps, &topic, &group, collector(tx, Duration::ZERO), case).await;
    publish(ps, &topic, "hello", case).await;
    let got = recv(&mut rx, &format!("{case}: delivery")).await;
    assert_eq!(got, Bytes::from("hello"), "{case}: payload");
}

/// A handler that fails gets the same message again (and is not called again once it
/// acknowledged it).
pub async fn redelivery_after_error(ps: &dyn PubSub) {
    let case = "pubsub::redelivery_after_error";
    let (topic, group) = (unique("topic"), unique("group"));
    let (tx, mut rx) = unbounded_channel();
    let calls = Arc::new(AtomicU32::new(0));
    let handler: Handler = {
        let calls = Arc::clone(&calls);
        Arc::new(move |m: Message| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(m.data);
            async move {
                if n == 0 {
                    Err(Error::internal("conformance: fail the first delivery"))
                } else {
                    Ok(())
                }
            }
            .boxed()
        })
    };
    let _sub = subscribe(ps, &topic, &group, handler, case).await;
    publish(ps, &topic, "again", case).await;
    let first = recv(&mut rx, &format!("{case}: first delivery")).await;
    let second = recv(&mut rx, &format!("{case}: redelivery after Err")).await;
    assert_eq!(first, Bytes::from("again"), "{case}: first payload");
    assert_eq!(second, first, "{case}: redelivered payload");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        rx.try_recv().is_err(),
        "{case}: an acknowledged message was delivered again"
    );
}

/// Collects payloads from `rxs` until `n` distinct ones arrived; returns what each got.
async fn collect_distinct(
    rxs: &mut [UnboundedReceiver<Bytes>],
    n: usize,
    what: &str,
) -> Vec<Vec<Bytes>> {
    let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); rxs.len()];
    within(WAIT, what, async {
        let mut distinct = HashSet::new();
        while distinct.len() < n {
            let recvs = rxs.iter_mut().map(|rx| rx.recv().boxed());
            let (m, i, _) = futures::future::select_all(recvs).await;
            let m = m.unwrap_or_else(|| panic!("{what}: handler channel closed"));
            distinct.insert(m.clone());
            got[i].push(m);
        }
    })
    .await;
    got
}

/// Two subscriptions of one group share 100 messages: disjoint, both busy, all delivered.
pub async fn competing_consumers(ps: &dyn PubSub) {
    let case = "pubsub::competing_consumers";
    let (topic, group) = (unique("topic"), unique("group"));
    let (tx1, rx1) = unbounded_channel();
    let (tx2, rx2) = unbounded_channel();
    let slow = Duration::from_millis(5);
    let _s1 = subscribe(ps, &topic, &group, collector(tx1, slow), case).await;
    let _s2 = subscribe(ps, &topic, &group, collector(tx2, slow), case).await;
    for i in 0..100 {
        publish(ps, &topic, format!("m{i}"), case).await;
    }
    let mut rxs = [rx1, rx2];
    let got = collect_distinct(&mut rxs, 100, &format!("{case}: 100 messages")).await;
    let a: HashSet<&Bytes> = got[0].iter().collect();
    let b: HashSet<&Bytes> = got[1].iter().collect();
    assert!(
        a.is_disjoint(&b),
        "{case}: members of one group got the same messages: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    assert!(
        !a.is_empty() && !b.is_empty(),
        "{case}: one member got all messages ({} / {})",
        a.len(),
        b.len()
    );
}

/// Two groups of one topic each get all 100 messages.
pub async fn fan_out(ps: &dyn PubSub) {
    let case = "pubsub::fan_out";
    let topic = unique("topic");
    let (tx1, rx1) = unbounded_channel();
    let (tx2, rx2) = unbounded_channel();
    let _s1 = subscribe(
        ps,
        &topic,
        &unique("group-a"),
        collector(tx1, Duration::ZERO),
        case,
    )
    .await;
    let _s2 = subscribe(
        ps,
        &topic,
        &unique("group-b"),
        collector(tx2, Duration::ZERO),
        case,
    )
    .await;
    for i in 0..100 {
        publish(ps, &topic, format!("m{i}"), case).await;
    }
    let expected: HashSet<Bytes> = (0..100).map(|i| Bytes::from(format!("m{i}"))).collect();
    for (i, rx) in [rx1, rx2].iter_mut().enumerate() {
        let got = collect_distinct(
            std::slice::from_mut(rx),
            100,
            &format!("{case}: group {i} receiving 100 messages"),
        )
        .await;
        let got: HashSet<Bytes> = got.into_iter().flatten().collect();
        assert_eq!(got, expected, "{case}: group {i} payloads");
    }
}

/// A member holding a message it never acknowledges is dropped: the other member of its group
/// receives the message.
pub async fn unacked_goes_to_other_member(ps: &dyn PubSub) {
    let case = "pubsub::unacked_goes_to_other_member";
    let (topic, group) = (unique("topic"), unique("group"));
    let (taken_tx, mut taken_rx) = unbounded_channel();
    let stuck: Handler = Arc::new(move |m: Message| {
        let _ = taken_tx.send(m.data);
        futures::future::pending().boxed()
    });
    let first = subscribe(ps, &topic, &group, stuck, case).await;
    publish(ps, &topic, "orphan", case).await;
    let taken = recv(
        &mut taken_rx,
        &format!("{case}: delivery to the stuck member"),
    )
    .await;
    assert_eq!(taken, Bytes::from("orphan"), "{case}: payload");
    let (tx, mut rx) = unbounded_channel();
    let _second = subscribe(ps, &topic, &group, collector(tx, Duration::ZERO), case).await;
    drop(first);
    let got = recv(&mut rx, &format!("{case}: hand-over to the other member")).await;
    assert_eq!(got, Bytes::from("orphan"), "{case}: handed-over payload");
}
