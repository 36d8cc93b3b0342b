//! What the RabbitMQ pub/sub and binding share: [`Connector`], the component's one AMQP
//! connection, and [`consume_loop`], a consumer that survives broken connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties};
use layotto_core::{Error, Health, Result};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// An unavailable error: `what` failed with the AMQP error `e`.
pub(crate) fn amqp_err(what: &str, e: &lapin::Error) -> Error {
    Error::unavailable(format!("{what}: {e}"))
}

/// `uri` with `heartbeat=<seconds>` in its query (what lapin reads), unless it names one.
fn with_heartbeat(uri: &str, heartbeat: Duration) -> String {
    if uri.contains("heartbeat=") {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}heartbeat={}", heartbeat.as_secs().max(1))
}

/// A component's connection, shared with its consumers: opened on first use and reopened
/// when it broke.
pub(crate) struct Connector {
    /// What to call the component in errors, e.g. `pubsub 'orders'`.
    pub(crate) label: String,
    uri: String,
    client_name: Option<String>,
    heartbeat: Duration,
    slot: Mutex<Option<Arc<Connection>>>,
}

impl Connector {
    /// A connector to `uri` (`amqp://...`), naming the connection `client_name` in the
    /// broker, with the AMQP `heartbeat` (whole seconds, at least 1). No I/O.
    pub(crate) fn new(
        label: String,
        uri: String,
        client_name: Option<String>,
        heartbeat: Duration,
    ) -> Self {
        Self {
            label,
            uri,
            client_name,
            heartbeat,
            slot: Mutex::new(None),
        }
    }

    /// The open connection, and whether it was opened by this call. Errors: unavailable when
    /// the broker cannot be reached or refuses the login.
    pub(crate) async fn get(&self) -> Result<(Arc<Connection>, bool)> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref()
            && c.status().connected()
        {
            return Ok((Arc::clone(c), false));
        }
        let mut props = ConnectionProperties::default();
        if let Some(n) = &self.client_name {
            props = props.with_connection_name(LongString::from(n.as_str()));
        }
        let uri = with_heartbeat(&self.uri, self.heartbeat);
        let c = Arc::new(
            Connection::connect(&uri, props)
                .await
                .map_err(|e| amqp_err(&format!("{}: connect to RabbitMQ", self.label), &e))?,
        );
        *slot = Some(Arc::clone(&c));
        Ok((c, true))
    }

    /// Up while the connection is open.
    pub(crate) async fn health(&self) -> Health {
        match self.slot.lock().await.as_ref() {
            Some(c) if c.status().connected() => Health::up(),
            Some(_) => Health::down("connection to RabbitMQ lost (reconnecting)"),
            None => Health::down("not connected"),
        }
    }

    /// Closes the connection (the broker requeues what its channels held).
    pub(crate) async fn close(&self) {
        if let Some(c) = self.slot.lock().await.take() {
            let _ = c.close(200, "closing".into()).await;
        }
    }
}

/// Runs the consumer `first` until `cancel`: each delivery is passed to `deliver` with one of
/// `slots` permits (the handler gives it back by dropping it). When the consumer or its
/// connection breaks, waits `reconnect_wait` and calls `open` for a new channel and
/// consumer, again until it succeeds. On cancel the channel is closed, so the broker requeues
/// what it held for the queue's other consumers.
pub(crate) async fn consume_loop<O, OF, D>(
    connector: &Connector,
    reconnect_wait: Duration,
    slots: usize,
    cancel: &CancellationToken,
    first: (Channel, lapin::Consumer),
    open: O,
    deliver: D,
) where
    O: Fn() -> OF,
    OF: Future<Output = Result<(Channel, lapin::Consumer)>>,
    D: Fn(lapin::message::Delivery, OwnedSemaphorePermit),
{
    let mut current = Some(first);
    let slots = Arc::new(Semaphore::new(slots));
    loop {
        let (ch, mut consumer) = match current.take() {
            Some(c) => c,
            None => {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(reconnect_wait) => {}
                }
                match open().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "{}: resubscribe failed", connector.label);
                        continue;
                    }
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = ch.close(200, "subscription dropped".into()).await;
                    return;
                }
                n = consumer.next() => n,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "{}: consumer failed", connector.label);
                    break;
                }
                None => break,
            };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            deliver(delivery, slot);
        }
    }
}
