//! What the RabbitMQ pub/sub and binding share: [`Connector`], the component's one AMQP
//! connection; [`consume_loop`], a consumer that survives broken connections, and [`settle`],
//! which acknowledges or requeues what it handed out; and for publishing, [`expiry_and_priority`]
//! and [`await_confirm`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::LongString;
use lapin::uri::{AMQPUri, SASLMechanism};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use layotto_core::pubsub::retry_delay;
use layotto_core::{Error, Health, Result};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::tls::AmqpTls;

/// How long a publish waits for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(20);

/// `v` trimmed, unless blank.
pub(crate) fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `props` with `expiration` from `ttl_in_seconds` (else `default_ttl`, seconds) and
/// `priority` from `priority`, both as request metadata gives them (blank: not given).
///
/// # Errors
/// Invalid argument naming `ttlInSeconds` or `priority` when it is no number in range.
pub(crate) fn expiry_and_priority(
    mut props: BasicProperties,
    ttl_in_seconds: Option<&str>,
    default_ttl: Option<u64>,
    priority: Option<&str>,
) -> Result<BasicProperties> {
    fn given(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let ttl = match given(ttl_in_seconds) {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            Error::invalid(format!("metadata 'ttlInSeconds' is not a number: {v}"))
        })?),
        None => default_ttl,
    };
    if let Some(secs) = ttl {
        props = props.with_expiration(secs.saturating_mul(1000).to_string().into());
    }
    if let Some(p) = given(priority) {
        let p: u8 = p.parse().map_err(|_| {
            Error::invalid(format!("metadata 'priority' must be 0 to 255, got {p}"))
        })?;
        props = props.with_priority(p);
    }
    Ok(props)
}

/// Waits (up to 20 s) for the broker's confirm of a publish to `target` (e.g. `'orders'`).
///
/// # Errors
/// Unavailable when the broker refused the message or the channel broke; deadline exceeded
/// without an answer in time.
pub(crate) async fn await_confirm(
    label: &str,
    target: &str,
    confirm: PublisherConfirm,
) -> Result<()> {
    match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => Ok(()),
        Ok(Ok(other)) => Err(Error::unavailable(format!(
            "{label}: the broker did not take the message for {target}: {other:?}"
        ))),
        Ok(Err(e)) => Err(amqp_err(&format!("{label}: confirm"), &e)),
        Err(_) => Err(Error::deadline_exceeded(format!(
            "{label}: no confirm within {CONFIRM_TIMEOUT:?}"
        ))),
    }
}

/// Runs `handle` for delivery `d` (a panic counts as a failure) and settles it: acknowledged
/// when it succeeded; else, with `requeue`, requeued after [`retry_delay`], or without it
/// rejected (dead-lettered where the queue has a dead-letter exchange). Nothing is settled
/// when `cancel` fires first: the channel's close hands the delivery back.
pub(crate) async fn settle<F>(
    label: &str,
    d: lapin::message::Delivery,
    handle: F,
    requeue: bool,
    cancel: &CancellationToken,
) where
    F: Future<Output = Result<()>>,
{
    let run = std::panic::AssertUnwindSafe(handle).catch_unwind();
    let outcome = tokio::select! {
        () = cancel.cancelled() => return,
        r = run => r,
    };
    let reason = match outcome {
        Ok(Ok(())) => {
            if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %e, "{label}: ack failed (the message comes again)");
            }
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "handler panicked".to_owned(),
    };
    if requeue {
        let delay = retry_delay(if d.redelivered { 4 } else { 1 });
        tracing::debug!(error = %reason, "{label}: delivery failed; requeue after {delay:?}");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    } else {
        tracing::warn!(error = %reason, "{label}: delivery failed; not requeued (requeueInFailure is false)");
    }
    let _ = d
        .acker
        .nack(BasicNackOptions {
            requeue,
            multiple: false,
        })
        .await;
}

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
    tls: Option<AmqpTls>,
    slot: Mutex<Option<Arc<Connection>>>,
}

impl Connector {
    /// A connector to `uri` (`amqp://...`, or `amqps://...` with `tls`), naming the
    /// connection `client_name` in the broker, with the AMQP `heartbeat` (whole seconds, at
    /// least 1). No I/O.
    pub(crate) fn new(
        label: String,
        uri: String,
        client_name: Option<String>,
        heartbeat: Duration,
        tls: Option<AmqpTls>,
    ) -> Self {
        Self {
            label,
            uri,
            client_name,
            heartbeat,
            tls,
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
        let failed =
            |e: &lapin::Error| amqp_err(&format!("{}: connect to RabbitMQ", self.label), e);
        let c = match &self.tls {
            None => Connection::connect(&uri, props).await,
            Some(tls) => {
                let mut uri: AMQPUri = uri.parse().map_err(|e: String| {
                    Error::invalid(format!("{}: connection string: {e}", self.label))
                })?;
                if tls.external {
                    uri.query.auth_mechanism = Some(SASLMechanism::External);
                }
                let runtime = lapin::runtime::default_runtime().map_err(|e| failed(&e))?;
                Connection::connect_uri_with_config(uri, props, tls.config.clone(), runtime).await
            }
        };
        let c = Arc::new(c.map_err(|e| failed(&e))?);
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
