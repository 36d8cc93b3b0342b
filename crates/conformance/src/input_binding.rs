//! Suite of the input side of a binding ([`InputBinding`], reached through
//! [`OutputBinding::input`]): events reach the handler once reading starts, a handler that
//! fails an event does not stop the reading (and a source that can redeliver, such as a queue,
//! redelivers that event), and nothing arrives once the reader is dropped.
//!
//! The test runs the source behind the binding and describes it in an [`InputSource`]: how to
//! make it produce an event (a queue: publish one; a timer: nothing, it ticks by itself).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use layotto_core::binding::{InputEvent, InputHandler, OutputBinding};
use layotto_core::{Error, Feature};
use tokio::sync::mpsc;

use crate::run::SuiteRun;
use crate::within;

/// The features this suite has cases for: none (Dapr defines no input binding features).
pub const FEATURES: &[Feature] = &[];

/// How long the source may take to deliver an event.
const WAIT: Duration = Duration::from_secs(10);

/// The source behind an input binding, as the test runs it.
pub struct InputSource {
    /// Makes the source produce one event carrying `data` (a timer produces its own events
    /// and ignores this).
    pub produce: Box<dyn Fn(Bytes) -> BoxFuture<'static, ()> + Send + Sync>,
    /// Whether events carry the data given to `produce` (a timer's carry none).
    pub carries_data: bool,
    /// Whether an event the handler failed comes again (a queue redelivers; a timer does not).
    pub redelivers: bool,
    /// How long to watch for a stray event after the reader is dropped (a timer: more than
    /// its period).
    pub quiet_period: Duration,
}

impl std::fmt::Debug for InputSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSource")
            .field("carries_data", &self.carries_data)
            .field("redelivers", &self.redelivers)
            .field("quiet_period", &self.quiet_period)
            .finish_non_exhaustive()
    }
}

/// Runs every case against a fresh binding from `factory` (initialised), which must read from
/// the source `source` drives.
///
/// # Panics
/// When a case fails, when the binding has no input side, or when it claims a feature.
pub async fn run_all<F, Fut>(factory: F, source: &InputSource)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn OutputBinding>>,
{
    let mut run = SuiteRun::start("input_binding", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("input_binding::reads_events", async {
        reads_events(f().await, source).await;
    })
    .await;
    run.case("input_binding::failed_event_does_not_stop_reading", async {
        failed_event_does_not_stop_reading(f().await, source).await;
    })
    .await;
    run.case("input_binding::stops_when_dropped", async {
        stops_when_dropped(f().await, source).await;
    })
    .await;
    run.finish();
}

/// A handler sending every event down a channel; it fails the first `fail_first` events.
fn recording(fail_first: usize) -> (InputHandler, mpsc::UnboundedReceiver<InputEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler: InputHandler = Arc::new(move |ev: InputEvent| {
        let _ = tx.send(ev);
        let n = failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if n < fail_first {
                Err(Error::unavailable(
                    "the conformance handler fails this event",
                ))
            } else {
                Ok(Bytes::new())
            }
        })
    });
    (handler, rx)
}

fn input_of(
    binding: Arc<dyn OutputBinding>,
    case: &str,
) -> Arc<dyn layotto_core::binding::InputBinding> {
    binding
        .input()
        .unwrap_or_else(|| panic!("{case}: the binding has no input side"))
}

/// Events produced after reading starts reach the handler (with their data, where the source
/// carries data).
pub async fn reads_events(binding: Arc<dyn OutputBinding>, source: &InputSource) {
    let case = "input_binding::reads_events";
    let (handler, mut rx) = recording(0);
    let _reader = input_of(binding, case)
        .read(handler)
        .await
        .unwrap_or_else(|e| panic!("{case}: read failed: {e}"));
    for i in 0..2 {
        let data = Bytes::from(format!("event-{i}-{}", crate::unique("in")));
        (source.produce)(data.clone()).await;
        let ev = within(WAIT, &format!("{case}: event {i}"), rx.recv())
            .await
            .unwrap_or_else(|| panic!("{case}: the handler is gone"));
        if source.carries_data {
            assert_eq!(ev.data, data, "{case}: event {i} payload");
        }
    }
}

/// The handler fails the first event: reading goes on (the next event arrives), and a
/// redelivering source delivers the failed event again.
pub async fn failed_event_does_not_stop_reading(
    binding: Arc<dyn OutputBinding>,
    source: &InputSource,
) {
    let case = "input_binding::failed_event_does_not_stop_reading";
    let (handler, mut rx) = recording(1);
    let _reader = input_of(binding, case)
        .read(handler)
        .await
        .unwrap_or_else(|e| panic!("{case}: read failed: {e}"));
    let data = Bytes::from(crate::unique("failed-once"));
    (source.produce)(data.clone()).await;
    let first = within(WAIT, &format!("{case}: the first event"), rx.recv())
        .await
        .unwrap_or_else(|| panic!("{case}: the handler is gone"));
    if source.redelivers {
        let again = within(WAIT, &format!("{case}: the failed event again"), rx.recv())
            .await
            .unwrap_or_else(|| panic!("{case}: the handler is gone"));
        if source.carries_data {
            assert_eq!((first.data, again.data), (data.clone(), data), "{case}");
        }
    } else {
        (source.produce)(Bytes::from(crate::unique("after"))).await;
        within(
            WAIT,
            &format!("{case}: an event after the failed one"),
            rx.recv(),
        )
        .await
        .unwrap_or_else(|| panic!("{case}: the handler is gone"));
    }
}

/// Once the reader is dropped no event reaches the handler.
pub async fn stops_when_dropped(binding: Arc<dyn OutputBinding>, source: &InputSource) {
    let case = "input_binding::stops_when_dropped";
    let (handler, mut rx) = recording(0);
    let reader = input_of(binding, case)
        .read(handler)
        .await
        .unwrap_or_else(|e| panic!("{case}: read failed: {e}"));
    (source.produce)(Bytes::from(crate::unique("before"))).await;
    within(WAIT, &format!("{case}: an event while reading"), rx.recv())
        .await
        .unwrap_or_else(|| panic!("{case}: the handler is gone"));
    drop(reader);
    // Let a delivery already under way land, then look for strays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while rx.try_recv().is_ok() {}
    (source.produce)(Bytes::from(crate::unique("after"))).await;
    let stray = tokio::time::timeout(source.quiet_period, rx.recv()).await;
    assert!(
        !matches!(stray, Ok(Some(_))),
        "{case}: an event arrived after the reader was dropped"
    );
}
