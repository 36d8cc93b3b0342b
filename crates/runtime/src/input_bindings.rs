//! Input bindings: events a binding reads (a timer, a queue) delivered to the app, as daprd
//! does (`dapr/dapr:pkg/runtime/processor/binding/send.go`; docs.dapr.io "Bindings API
//! reference"): the app is asked whether it takes a binding's events (`OPTIONS /<route>` or
//! `ListInputBindings`), then each event is posted to `/<route>` (`OnBindingEvent`), where
//! `route` is the component's `route` metadata, else its name. A component whose `direction`
//! metadata leaves out `input` is not read (and one that leaves out `output` cannot be
//! invoked).
//!
//! Readers start with the app's subscriptions and stop with them: while the app is unhealthy
//! or unreachable nothing is read, as daprd stops reading input bindings.

use std::sync::Arc;

use layotto_config::resiliency::TargetPolicies;
use layotto_core::binding::{BindingRequest, InputEvent, InputHandler, OutputBinding};
use layotto_core::{Error, Kind, Metadata};

use crate::resiliency::{Guarded, judge_component};
use crate::{AppChannel, BindingReply, ChannelError, Runtime, lock};

/// A binding's `direction` and `route` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindingRoute {
    /// The app path (HTTP) its events go to: `route`, else the binding's name.
    pub route: String,
    /// Whether `direction` lets it be read (no `direction` lets both).
    pub input: bool,
    /// Whether `direction` lets it be invoked.
    pub output: bool,
}

impl BindingRoute {
    /// Reads binding `name`'s `route` and `direction` from its component `metadata`.
    pub(crate) fn of(name: &str, metadata: &Metadata) -> Self {
        let get = |key: &str| {
            metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let route = get("route")
            .filter(|r| !r.is_empty())
            .unwrap_or(name)
            .to_owned();
        let (input, output) = match get("direction") {
            None => (true, true),
            Some(d) => {
                let has = |want: &str| d.split(',').any(|x| x.trim().eq_ignore_ascii_case(want));
                (has("input"), has("output"))
            }
        };
        Self {
            route,
            input,
            output,
        }
    }
}

impl Runtime {
    /// Starts reading every input binding the app takes (asked through `channel`); the
    /// readers are kept with the app's subscriptions and stop with them. A binding that cannot
    /// be read is logged and left out.
    pub(crate) async fn start_input_bindings(
        self: &Arc<Self>,
        channel: &Arc<dyn AppChannel>,
        app_down: &Arc<tokio::sync::Notify>,
    ) {
        for name in self.components.snapshot().names(Kind::Binding) {
            // Route, reader and policies all from this one resolution of the binding.
            let Ok(target) = self.components.target::<dyn OutputBinding>(name) else {
                continue;
            };
            let Some(route) = target.route().filter(|r| r.input) else {
                continue;
            };
            let Some(input) = target.component.clone().input() else {
                continue;
            };
            match channel.binding_subscribed(name, &route.route).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(binding = %name, route = %route.route, "app does not take this input binding's events; not reading it");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(binding = %name, error = %e, "could not ask the app about input binding; not reading it");
                    continue;
                }
            }
            let inbound = target.resiliency().inbound_guard();
            let handler = self.binding_handler(channel, name, &route.route, inbound, app_down);
            match target.run_once("read", input.read(handler)).await {
                Ok(reader) => {
                    tracing::info!(binding = %name, route = %route.route, "reading input binding for app");
                    lock(&self.app_subscriptions).push(target.hold(reader));
                }
                Err(e) => {
                    tracing::error!(binding = %name, error = %e, "input binding cannot be read");
                }
            }
        }
    }

    /// The handler of binding `name`'s events: each goes to the app under the binding's
    /// `inbound` Resiliency policy (with its metrics target); a failure goes back to the
    /// binding as an error, and an app found unreachable notifies `app_down` (its readers stop
    /// until it answers again).
    fn binding_handler(
        self: &Arc<Self>,
        channel: &Arc<dyn AppChannel>,
        name: &str,
        route: &str,
        inbound: Option<Arc<(TargetPolicies, String)>>,
        app_down: &Arc<tokio::sync::Notify>,
    ) -> InputHandler {
        let (ch, metrics, policies) =
            (channel.clone(), self.metrics.clone(), self.policies.clone());
        let (name, route) = (Arc::<str>::from(name), Arc::<str>::from(route));
        let down = app_down.clone();
        // Weak: the handler lives inside a component of this runtime.
        let rt = Arc::downgrade(self);
        Arc::new(move |ev: InputEvent| {
            let (ch, metrics, policies) = (ch.clone(), metrics.clone(), policies.clone());
            let (down, rt) = (down.clone(), rt.clone());
            let (name, route, inbound) = (name.clone(), route.clone(), inbound.clone());
            Box::pin(async move {
                let started = std::time::Instant::now();
                let once = || async {
                    ch.deliver_binding(&name, &route, &ev)
                        .await
                        .map_err(|e| match e {
                            ChannelError::Unavailable(m) => {
                                down.notify_one();
                                Error::unavailable(format!(
                                    "delivering an event of input binding '{name}': {m}"
                                ))
                            }
                            other => Error::internal(format!(
                                "the app failed an event of input binding '{name}': {other}"
                            )),
                        })
                };
                let r = match inbound.as_deref() {
                    None => once().await,
                    Some((p, target)) => {
                        let to = Guarded {
                            target,
                            endpoint: &name,
                            inbound: true,
                        };
                        policies.run(p, &to, &metrics, once, judge_component).await
                    }
                };
                metrics.input_binding(&name, r.is_ok(), started.elapsed());
                match r {
                    Err(e) => {
                        tracing::warn!(binding = %name, error = %e, "input binding event not taken by the app");
                        Err(e)
                    }
                    Ok(reply) => {
                        if let Some(rt) = rt.upgrade() {
                            rt.on_binding_reply(&name, &reply).await;
                        }
                        Ok(reply.data)
                    }
                }
            })
        })
    }
}

impl Runtime {
    /// Does what a gRPC app's answer to an event of input binding `binding` asks
    /// (daprd's `onAppResponse`): saves `states` in `store_name` (daprd reads but never applies
    /// them) and invokes each `to` binding with operation `create` and the answer's data as
    /// JSON (`null` when it is not JSON, as daprd marshals it), one after the other (the first
    /// failure stops the rest) or, with `parallel`, at once. Failures are logged: the event
    /// itself was taken by the app.
    async fn on_binding_reply(&self, binding: &str, reply: &BindingReply) {
        if !reply.states.is_empty()
            && let Err(e) = self
                .save_state(&reply.store_name, reply.states.clone())
                .await
        {
            tracing::error!(%binding, store = %reply.store_name, error = %e, "saving the state of the app's binding answer failed");
        }
        if reply.to.is_empty() {
            return;
        }
        let data = serde_json::from_slice::<serde_json::Value>(&reply.data)
            .unwrap_or(serde_json::Value::Null)
            .to_string();
        let send = |to: &str| {
            let req = BindingRequest {
                operation: "create".to_owned(),
                data: bytes::Bytes::from(data.clone()),
                metadata: Metadata::new(),
            };
            let to = to.to_owned();
            async move {
                let r = self.invoke_binding(&to, req).await;
                if let Err(e) = &r {
                    tracing::error!(%binding, %to, error = %e, "sending the app's binding answer to an output binding failed");
                }
                r
            }
        };
        if reply.parallel {
            futures::future::join_all(reply.to.iter().map(|t| send(t))).await;
        } else {
            for t in &reply.to {
                if send(t).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_direction_read_as_daprd_reads_them() {
        let md = |pairs: &[(&str, &str)]| -> Metadata {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let r = BindingRoute::of("tick", &md(&[]));
        assert_eq!((r.route.as_str(), r.input, r.output), ("tick", true, true));
        let r = BindingRoute::of("tick", &md(&[("route", "/cron"), ("direction", "input")]));
        assert_eq!(
            (r.route.as_str(), r.input, r.output),
            ("/cron", true, false)
        );
        let r = BindingRoute::of("q", &md(&[("direction", " Output , input")]));
        assert_eq!((r.input, r.output), (true, true));
        let r = BindingRoute::of("q", &md(&[("direction", "output")]));
        assert_eq!((r.input, r.output), (false, true));
    }
}
