//! `dapr.proto.runtime.v1.Dapr` over [`layotto_runtime::Runtime`]: the same components and
//! domain calls as the Layotto API, with Dapr's request shapes and rich errors.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use layotto_core::Error;
use layotto_core::binding::BindingRequest;
use layotto_core::configuration::{ConfigItem, ConfigQuery};
use layotto_core::lock::LockStatus;
use layotto_core::state::DeleteRequest;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as pb;
use layotto_proto::dapr::proto::runtime::v1::dapr_server::Dapr;
use layotto_runtime::{InvokeRequest, Runtime, TopicEvent};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::errors::{Block, err};
use crate::convert::dapr_state::{delete_request, etag, options, set_request, transaction};
use crate::stream_sub::Pending;

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Settings of the Dapr gRPC API beyond the runtime.
#[derive(Clone)]
pub struct DaprGrpcOptions {
    /// Notified when a client calls `Shutdown`.
    pub shutdown: Arc<Notify>,
    /// Reported as `runtime_version` by `GetMetadata`.
    pub runtime_version: String,
}

/// Serves the Dapr runtime API.
pub struct DaprService {
    rt: Arc<Runtime>,
    opts: DaprGrpcOptions,
    /// Live configuration subscriptions by id, for `UnsubscribeConfiguration`.
    config_subs: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl DaprService {
    /// A service over `rt`.
    pub fn new(rt: Arc<Runtime>, opts: DaprGrpcOptions) -> Self {
        Self {
            rt,
            opts,
            config_subs: Arc::default(),
        }
    }

    async fn do_get_configuration(
        &self,
        r: pb::GetConfigurationRequest,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        let q = config_query(r.keys, r.metadata);
        let items = self
            .rt
            .get_configuration(&r.store_name, q)
            .await
            .map_err(err(Block::Configuration, "ERR_CONFIGURATION_GET"))?;
        Ok(Response::new(pb::GetConfigurationResponse {
            items: config_items(items),
        }))
    }

    async fn do_subscribe_configuration(
        &self,
        r: pb::SubscribeConfigurationRequest,
    ) -> Result<Response<Stream2<pb::SubscribeConfigurationResponse>>, Status> {
        let mut changes = self
            .rt
            .subscribe_configuration(&r.store_name, config_query(r.keys, r.metadata))
            .await
            .map_err(err(Block::Configuration, "ERR_CONFIGURATION_SUBSCRIBE"))?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::channel(64);
        // The first message carries the subscription id only, as Dapr's does.
        let _ = tx
            .send(Ok(pb::SubscribeConfigurationResponse {
                id: id.clone(),
                items: HashMap::new(),
            }))
            .await;
        let subs = self.config_subs.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    batch = changes.recv() => {
                        let Some(items) = batch else { break };
                        let resp = pb::SubscribeConfigurationResponse {
                            id: task_id.clone(),
                            items: config_items(items),
                        };
                        if tx.send(Ok(resp)).await.is_err() {
                            break;
                        }
                    }
                    () = tx.closed() => break,
                }
            }
            lock(&subs).remove(&task_id);
        });
        lock(&self.config_subs).insert(id, task.abort_handle());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn do_unsubscribe_configuration(
        &self,
        r: &pb::UnsubscribeConfigurationRequest,
    ) -> pb::UnsubscribeConfigurationResponse {
        match lock(&self.config_subs).remove(&r.id) {
            Some(task) => {
                task.abort();
                pb::UnsubscribeConfigurationResponse {
                    ok: true,
                    message: String::new(),
                }
            }
            None => pb::UnsubscribeConfigurationResponse {
                ok: false,
                message: format!("subscription '{}' is not found", r.id),
            },
        }
    }

    async fn do_bulk_publish(
        &self,
        r: pb::BulkPublishRequest,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        let op = "ERR_PUBSUB_PUBLISH_MESSAGE";
        if r.entries.is_empty() {
            return Err(err(Block::PubSub, op)(Error::invalid(
                "entries is empty: nothing to publish",
            )));
        }
        let mut failed = Vec::new();
        for e in r.entries {
            let mut metadata = r.metadata.clone();
            metadata.extend(e.metadata);
            if let Err(x) = self
                .rt
                .publish(
                    &r.pubsub_name,
                    &r.topic,
                    &e.event,
                    &e.content_type,
                    metadata,
                )
                .await
            {
                // A request-level problem (unknown pub/sub, empty topic) fails the whole call.
                if matches!(
                    x.kind,
                    layotto_core::ErrorKind::StoreNotFound | layotto_core::ErrorKind::NotConfigured
                ) || r.topic.is_empty()
                {
                    return Err(err(Block::PubSub, op)(x));
                }
                failed.push(pb::BulkPublishResponseFailedEntry {
                    entry_id: e.entry_id,
                    error: x.message,
                });
            }
        }
        Ok(Response::new(pb::BulkPublishResponse {
            failed_entries: failed,
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn config_query(keys: Vec<String>, metadata: HashMap<String, String>) -> ConfigQuery {
    ConfigQuery {
        keys,
        metadata,
        ..ConfigQuery::default()
    }
}

/// Dapr's item map: key -> value, version (from the item's `version` metadata) and metadata.
fn config_items(items: Vec<ConfigItem>) -> HashMap<String, common::ConfigurationItem> {
    items
        .into_iter()
        .map(|i| {
            let version = i.metadata.get("version").cloned().unwrap_or_default();
            (
                i.key,
                common::ConfigurationItem {
                    value: i.content,
                    version,
                    metadata: i.metadata,
                },
            )
        })
        .collect()
}

/// A delivered event in Dapr's `TopicEventRequest` shape.
pub(crate) fn topic_event(ev: &TopicEvent) -> pb::TopicEventRequest {
    pb::TopicEventRequest {
        id: ev.id.clone(),
        source: ev.source.clone(),
        r#type: ev.type_.clone(),
        spec_version: ev.spec_version.clone(),
        data_content_type: ev.data_content_type.clone(),
        data: ev.data.to_vec(),
        topic: ev.topic.clone(),
        pubsub_name: ev.pubsub_name.clone(),
        path: String::new(),
        extensions: None,
    }
}

/// Maps Dapr's `TopicEventResponse.status` to an outcome; unknown values retry.
pub(crate) fn outcome(status: i32) -> layotto_runtime::EventOutcome {
    use layotto_runtime::EventOutcome;
    use pb::topic_event_response::TopicEventResponseStatus as S;
    match S::try_from(status) {
        Ok(S::Success) => EventOutcome::Success,
        Ok(S::Drop) => EventOutcome::Drop,
        Ok(S::Retry) | Err(_) => EventOutcome::Retry,
    }
}

fn unlock_status(s: LockStatus) -> i32 {
    use pb::unlock_response::Status as S;
    match s {
        LockStatus::Success => S::Success,
        LockStatus::LockUnexist => S::LockDoesNotExist,
        LockStatus::LockBelongToOthers => S::LockBelongsToOthers,
        LockStatus::InternalError => S::InternalError,
    }
    .into()
}

/// The HTTP verb of a Dapr `HTTPExtension` (POST when absent or NONE, as Dapr calls HTTP apps).
fn verb(ext: Option<&common::HttpExtension>) -> String {
    use common::http_extension::Verb;
    match ext.and_then(|e| Verb::try_from(e.verb).ok()) {
        None | Some(Verb::None) => "POST".to_owned(),
        Some(v) => v.as_str_name().to_owned(),
    }
}

#[tonic::async_trait]
impl Dapr for DaprService {
    async fn invoke_service(
        &self,
        req: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<common::InvokeResponse>, Status> {
        let op = "ERR_DIRECT_INVOKE";
        let headers = req
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .filter(|(k, _)| super::forwardable_header(k))
            .collect();
        let r = req.into_inner();
        let m = r.message.ok_or_else(|| {
            err(Block::Invoke, op)(Error::invalid("message is empty: nothing to invoke"))
        })?;
        let invoke = InvokeRequest {
            method: m.method,
            http_verb: verb(m.http_extension.as_ref()),
            query: m
                .http_extension
                .as_ref()
                .map(|e| e.querystring.clone())
                .unwrap_or_default(),
            content_type: m.content_type,
            data: m.data.map(|a| a.value).unwrap_or_default().into(),
            headers,
        };
        let resp = self
            .rt
            .invoke_service(&r.id, &invoke)
            .await
            .map_err(err(Block::Invoke, op))?;
        if !(200..300).contains(&resp.status) {
            // Dapr reports a failed HTTP app call as an error carrying the app's status.
            return Err(Status::unknown(format!(
                "app '{}' answered HTTP {} for '{}': {}",
                r.id,
                resp.status,
                invoke.method,
                String::from_utf8_lossy(&resp.data)
            )));
        }
        Ok(Response::new(common::InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: resp.data.to_vec(),
            }),
            content_type: resp.content_type,
        }))
    }

    async fn get_state(
        &self,
        req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let r = req.into_inner();
        let item = self
            .rt
            .get_state(&r.store_name, &r.key, &r.metadata)
            .await
            .map_err(err(Block::State, "ERR_STATE_GET"))?;
        Ok(Response::new(match item {
            Some(i) => pb::GetStateResponse {
                data: i.data.to_vec(),
                etag: i.etag.unwrap_or_default(),
                metadata: i.metadata,
            },
            None => pb::GetStateResponse::default(),
        }))
    }

    async fn get_bulk_state(
        &self,
        req: Request<pb::GetBulkStateRequest>,
    ) -> Result<Response<pb::GetBulkStateResponse>, Status> {
        let r = req.into_inner();
        let items = self
            .rt
            .get_bulk_state(&r.store_name, &r.keys, &r.metadata)
            .await
            .map_err(err(Block::State, "ERR_STATE_BULK_GET"))?;
        let items = items
            .into_iter()
            .map(|b| match b.item {
                Ok(Some(i)) => pb::BulkStateItem {
                    key: b.key,
                    data: i.data.to_vec(),
                    etag: i.etag.unwrap_or_default(),
                    error: String::new(),
                    metadata: i.metadata,
                },
                Ok(None) => pb::BulkStateItem {
                    key: b.key,
                    ..Default::default()
                },
                Err(error) => pb::BulkStateItem {
                    key: b.key,
                    error,
                    ..Default::default()
                },
            })
            .collect();
        Ok(Response::new(pb::GetBulkStateResponse { items }))
    }

    async fn save_state(&self, req: Request<pb::SaveStateRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let items = r.states.into_iter().map(set_request).collect();
        self.rt
            .save_state(&r.store_name, items)
            .await
            .map_err(err(Block::State, "ERR_STATE_SAVE"))?;
        Ok(Response::new(()))
    }

    async fn query_state_alpha1(
        &self,
        req: Request<pb::QueryStateRequest>,
    ) -> Result<Response<pb::QueryStateResponse>, Status> {
        let r = req.into_inner();
        // Resolve the store first so an unknown store gets its own error.
        self.rt
            .get_state(&r.store_name, "", &HashMap::new())
            .await
            .map(drop)
            .or_else(|e| match e.kind {
                layotto_core::ErrorKind::StoreNotFound | layotto_core::ErrorKind::NotConfigured => {
                    Err(e)
                }
                _ => Ok(()),
            })
            .map_err(err(Block::State, "ERR_STATE_QUERY"))?;
        Err(super::errors::status(
            Block::State,
            "DAPR_STATE_QUERYING_NOT_SUPPORTED",
            Error::new(
                layotto_core::ErrorKind::Internal,
                format!("state store {} doesn't support query", r.store_name),
            ),
        ))
    }

    async fn delete_state(
        &self,
        req: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let d = DeleteRequest {
            key: r.key,
            etag: etag(r.etag),
            metadata: r.metadata,
            options: options(r.options),
        };
        self.rt
            .delete_state(&r.store_name, vec![d])
            .await
            .map_err(err(Block::State, "ERR_STATE_DELETE"))?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(
        &self,
        req: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let reqs = r.states.into_iter().map(delete_request).collect();
        self.rt
            .delete_state(&r.store_name, reqs)
            .await
            .map_err(err(Block::State, "ERR_STATE_BULK_DELETE"))?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        req: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let e = err(Block::State, "ERR_STATE_TRANSACTION");
        let ops = match transaction(r.operations) {
            Ok(ops) => ops,
            Err(x) => return Err(e(x)),
        };
        self.rt
            .transact_state(&r.store_name, ops, &r.metadata)
            .await
            .map_err(e)?;
        Ok(Response::new(()))
    }

    async fn publish_event(
        &self,
        req: Request<pb::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.rt
            .publish(
                &r.pubsub_name,
                &r.topic,
                &r.data,
                &r.data_content_type,
                r.metadata,
            )
            .await
            .map_err(err(Block::PubSub, "DAPR_PUBSUB_PUBLISH_MESSAGE"))?;
        Ok(Response::new(()))
    }

    async fn bulk_publish_event_alpha1(
        &self,
        req: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        self.do_bulk_publish(req.into_inner()).await
    }

    async fn bulk_publish_event(
        &self,
        req: Request<pb::BulkPublishRequest>,
    ) -> Result<Response<pb::BulkPublishResponse>, Status> {
        self.do_bulk_publish(req.into_inner()).await
    }

    type SubscribeTopicEventsAlpha1Stream = Stream2<pb::SubscribeTopicEventsResponseAlpha1>;

    async fn subscribe_topic_events_alpha1(
        &self,
        req: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<Self::SubscribeTopicEventsAlpha1Stream>, Status> {
        use pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as In;
        use pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Out;
        let mut incoming = req.into_inner();
        let initial = match incoming.next().await {
            Some(Ok(pb::SubscribeTopicEventsRequestAlpha1 {
                subscribe_topic_events_request_type: Some(In::InitialRequest(i)),
            })) => i,
            Some(Err(s)) => return Err(s),
            _ => {
                return Err(err(Block::PubSub, "ERR_BAD_REQUEST")(Error::invalid(
                    "the first message of SubscribeTopicEventsAlpha1 must be initial_request",
                )));
            }
        };
        let pending = Pending::default();
        let (tx, rx) = mpsc::channel::<Result<pb::SubscribeTopicEventsResponseAlpha1, Status>>(64);
        let handler = pending.handler(tx.clone(), |ev| pb::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(Out::EventMessage(topic_event(ev))),
        });
        let subscription = self
            .rt
            .subscribe(
                &initial.pubsub_name,
                &initial.topic,
                initial.metadata,
                handler,
            )
            .await
            .map_err(err(Block::PubSub, "ERR_PUBSUB_SUBSCRIBE"))?;
        let first = pb::SubscribeTopicEventsResponseAlpha1 {
            subscribe_topic_events_response_type: Some(Out::InitialResponse(
                pb::SubscribeTopicEventsResponseInitialAlpha1 {},
            )),
        };
        let _ = tx.send(Ok(first)).await;
        tokio::spawn(async move {
            while let Some(Ok(msg)) = incoming.next().await {
                if let Some(In::EventProcessed(p)) = msg.subscribe_topic_events_request_type {
                    pending.ack(&p.id, outcome(p.status.map_or(0, |s| s.status)));
                }
            }
            // Stream ended: stop delivery; unacknowledged events go back to the group.
            drop(subscription);
            pending.clear();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn invoke_binding(
        &self,
        req: Request<pb::InvokeBindingRequest>,
    ) -> Result<Response<pb::InvokeBindingResponse>, Status> {
        let r = req.into_inner();
        let resp = self
            .rt
            .invoke_binding(
                &r.name,
                BindingRequest {
                    operation: r.operation,
                    data: r.data.into(),
                    metadata: r.metadata,
                },
            )
            .await
            .map_err(err(Block::Binding, "ERR_INVOKE_OUTPUT_BINDING"))?;
        Ok(Response::new(pb::InvokeBindingResponse {
            data: resp.data.to_vec(),
            metadata: resp.metadata,
        }))
    }

    async fn get_secret(
        &self,
        req: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        let r = req.into_inner();
        let data = self
            .rt
            .get_secret(&r.store_name, &r.key, &r.metadata)
            .await
            .map_err(err(Block::Secret, "ERR_SECRET_GET"))?;
        Ok(Response::new(pb::GetSecretResponse { data }))
    }

    async fn get_bulk_secret(
        &self,
        req: Request<pb::GetBulkSecretRequest>,
    ) -> Result<Response<pb::GetBulkSecretResponse>, Status> {
        let r = req.into_inner();
        let all = self
            .rt
            .get_bulk_secret(&r.store_name, &r.metadata)
            .await
            .map_err(err(Block::Secret, "ERR_SECRET_GET"))?;
        Ok(Response::new(pb::GetBulkSecretResponse {
            data: all
                .into_iter()
                .map(|(k, secrets)| (k, pb::SecretResponse { secrets }))
                .collect(),
        }))
    }

    async fn get_configuration_alpha1(
        &self,
        req: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        self.do_get_configuration(req.into_inner()).await
    }

    async fn get_configuration(
        &self,
        req: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        self.do_get_configuration(req.into_inner()).await
    }

    type SubscribeConfigurationAlpha1Stream = Stream2<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration_alpha1(
        &self,
        req: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<Self::SubscribeConfigurationAlpha1Stream>, Status> {
        self.do_subscribe_configuration(req.into_inner()).await
    }

    type SubscribeConfigurationStream = Stream2<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration(
        &self,
        req: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<Self::SubscribeConfigurationStream>, Status> {
        self.do_subscribe_configuration(req.into_inner()).await
    }

    async fn unsubscribe_configuration_alpha1(
        &self,
        req: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        Ok(Response::new(
            self.do_unsubscribe_configuration(&req.into_inner()),
        ))
    }

    async fn unsubscribe_configuration(
        &self,
        req: Request<pb::UnsubscribeConfigurationRequest>,
    ) -> Result<Response<pb::UnsubscribeConfigurationResponse>, Status> {
        Ok(Response::new(
            self.do_unsubscribe_configuration(&req.into_inner()),
        ))
    }

    async fn try_lock_alpha1(
        &self,
        req: Request<pb::TryLockRequest>,
    ) -> Result<Response<pb::TryLockResponse>, Status> {
        let r = req.into_inner();
        let success = self
            .rt
            .try_lock(
                &r.store_name,
                &r.resource_id,
                &r.lock_owner,
                r.expiry_in_seconds,
            )
            .await
            .map_err(err(Block::Lock, "ERR_TRY_LOCK"))?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock_alpha1(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let r = req.into_inner();
        let s = self
            .rt
            .unlock(&r.store_name, &r.resource_id, &r.lock_owner)
            .await
            .map_err(err(Block::Lock, "ERR_UNLOCK"))?;
        Ok(Response::new(pb::UnlockResponse {
            status: unlock_status(s),
        }))
    }

    async fn get_metadata(
        &self,
        _req: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let rt = &self.rt;
        let subscriptions = rt
            .app_subscriptions()
            .into_iter()
            .map(|s| pb::PubsubSubscription {
                pubsub_name: s.pubsub_name,
                topic: s.topic,
                rules: Some(pb::PubsubSubscriptionRules {
                    rules: vec![pb::PubsubSubscriptionRule {
                        r#match: String::new(),
                        path: s.route,
                    }],
                }),
                metadata: s.metadata,
                dead_letter_topic: String::new(),
                r#type: pb::PubsubSubscriptionType::Programmatic.into(),
            })
            .collect();
        Ok(Response::new(pb::GetMetadataResponse {
            id: rt.app_id().to_owned(),
            registered_components: rt
                .components()
                .iter()
                .map(|c| pb::RegisteredComponents {
                    name: c.name.clone(),
                    r#type: c.dapr_type(),
                    version: "v1".to_owned(),
                    capabilities: super::capabilities(c.kind),
                })
                .collect(),
            extended_metadata: rt.attributes().into_iter().collect(),
            subscriptions,
            app_connection_properties: rt.app_connection().map(|a| pb::AppConnectionProperties {
                port: i32::from(a.port),
                protocol: a.protocol,
                channel_address: a.channel_address,
                ..Default::default()
            }),
            runtime_version: self.opts.runtime_version.clone(),
            ..Default::default()
        }))
    }

    async fn set_metadata(
        &self,
        req: Request<pb::SetMetadataRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.rt
            .set_attribute(&r.key, &r.value)
            .map_err(err(Block::Metadata, "ERR_METADATA_SET"))?;
        Ok(Response::new(()))
    }

    async fn shutdown(&self, _req: Request<pb::ShutdownRequest>) -> Result<Response<()>, Status> {
        self.opts.shutdown.notify_one();
        Ok(Response::new(()))
    }
}
