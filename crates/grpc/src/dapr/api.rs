//! `dapr.proto.runtime.v1.Dapr` over [`layotto_runtime::Runtime`]: the rpcs Layotto shares
//! answered by the shared handlers ([`super::shared`]) with Dapr's rich errors, and Dapr's own
//! (configuration, bulk publish, streaming subscription, state query, metadata, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use layotto_core::Error;
use layotto_core::configuration::{ConfigItem, ConfigQuery};
use layotto_dapr_wire::errors::ERR_PUBSUB_PUBLISH_MESSAGE;
use layotto_dapr_wire::metadata::COMPONENT_VERSION;
use layotto_proto::dapr::proto::common::v1 as common;
use layotto_proto::dapr::proto::runtime::v1 as pb;
use layotto_proto::dapr::proto::runtime::v1::dapr_server::Dapr;
use layotto_runtime::{Runtime, SubscriptionType, TopicEvent};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::errors::{Block, Failure, err};
use super::shared::DaprApi;
use crate::{BoxStream, stream_sub};

stream_sub::topic_stream!(
    DaprTopicStream, "SubscribeTopicEventsAlpha1",
    request: pb::SubscribeTopicEventsRequestAlpha1,
    request_type: pb::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType,
    response: pb::SubscribeTopicEventsResponseAlpha1,
    response_type: pb::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType,
    initial_response: pb::SubscribeTopicEventsResponseInitialAlpha1 {},
    event: topic_event,
    outcome: outcome,
    dead_letter: |i: &pb::SubscribeTopicEventsRequestInitialAlpha1| i
        .dead_letter_topic
        .clone()
        .filter(|t| !t.is_empty()),
);

/// Settings of the Dapr gRPC API beyond the runtime.
#[derive(Clone)]
pub struct DaprGrpcOptions {
    /// Notified when a client calls `Shutdown`.
    pub shutdown: Arc<Notify>,
    /// Reported as `runtime_version` by `GetMetadata`.
    pub runtime_version: String,
    /// The Configuration's API allow and deny lists (gRPC rules).
    pub access: layotto_dapr_wire::access::ApiAccess,
    /// gRPC proxying of calls for services this sidecar does not serve (`None`: they are
    /// `UNIMPLEMENTED`).
    pub proxy: Option<Arc<crate::proxy::GrpcProxy>>,
}

/// Serves the Dapr runtime API.
pub struct DaprService {
    rt: Arc<Runtime>,
    api: DaprApi,
    opts: DaprGrpcOptions,
    /// Live configuration subscriptions by id, for `UnsubscribeConfiguration`.
    config_subs: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl DaprService {
    /// A service over `rt`.
    pub fn new(rt: Arc<Runtime>, opts: DaprGrpcOptions) -> Self {
        Self {
            api: DaprApi { rt: rt.clone() },
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
    ) -> Result<Response<BoxStream<pb::SubscribeConfigurationResponse>>, Status> {
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
        let op = ERR_PUBSUB_PUBLISH_MESSAGE;
        if r.entries.is_empty() {
            return Err(err(Block::PubSub, op)(Error::invalid(
                "entries is empty: nothing to publish",
            )));
        }
        // Concurrently, as Dapr's default bulk publisher; a broker client batches what is in
        // flight together (Kafka's producer sends them in one request per partition).
        let outcomes = futures::future::join_all(r.entries.iter().map(|e| {
            let mut metadata = r.metadata.clone();
            metadata.extend(e.metadata.clone());
            self.rt.publish(
                &r.pubsub_name,
                &r.topic,
                &e.event,
                &e.content_type,
                metadata,
            )
        }))
        .await;
        let mut failed = Vec::new();
        for (e, outcome) in r.entries.iter().zip(outcomes) {
            if let Err(x) = outcome {
                // A request-level problem (unknown pub/sub, empty topic) fails the whole call.
                if matches!(
                    x.kind,
                    layotto_core::ErrorKind::StoreNotFound | layotto_core::ErrorKind::NotConfigured
                ) || r.topic.is_empty()
                {
                    return Err(err(Block::PubSub, op)(x));
                }
                failed.push(pb::BulkPublishResponseFailedEntry {
                    entry_id: e.entry_id.clone(),
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
    crate::convert::topic_event_request!(pb::TopicEventRequest, ev, {
        path: String::new(),
        extensions: Some(extensions(ev)),
    })
}

/// The CloudEvent attributes that have no field of their own in `TopicEventRequest`, as
/// daprd's `ExtractCloudEventExtensions` passes them: every attribute of the delivered event
/// but `id`, `source`, `type`, `specversion`, `datacontenttype`, `data` and `data_base64`
/// (so `topic`, `pubsubname`, `time`, the trace fields and custom extensions).
fn extensions(ev: &TopicEvent) -> prost_types::Struct {
    let mut ce = layotto_runtime::cloudevent::delivered(ev, false);
    for k in [
        "id",
        "source",
        "type",
        "specversion",
        "datacontenttype",
        "data",
        "data_base64",
    ] {
        ce.remove(k);
    }
    crate::convert::json_struct(ce)
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

/// A shared handler's answer as Dapr sends it.
fn dapr<T>(answer: Result<T, Failure>) -> Result<Response<T>, Status> {
    answer.map(Response::new).map_err(Failure::dapr)
}

#[tonic::async_trait]
impl Dapr for DaprService {
    async fn invoke_service(
        &self,
        req: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<common::InvokeResponse>, Status> {
        self.api.invoke_service(req).await.map_err(Failure::dapr)
    }

    async fn get_state(
        &self,
        req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        dapr(self.api.get_state(req.into_inner()).await)
    }

    async fn get_bulk_state(
        &self,
        req: Request<pb::GetBulkStateRequest>,
    ) -> Result<Response<pb::GetBulkStateResponse>, Status> {
        dapr(self.api.get_bulk_state(req.into_inner()).await)
    }

    async fn save_state(&self, req: Request<pb::SaveStateRequest>) -> Result<Response<()>, Status> {
        dapr(self.api.save_state(req.into_inner()).await)
    }

    async fn query_state_alpha1(
        &self,
        req: Request<pb::QueryStateRequest>,
    ) -> Result<Response<pb::QueryStateResponse>, Status> {
        let r = req.into_inner();
        match self.rt.query_state(&r.store_name, r.query.as_bytes()).await {
            Ok(resp) => Ok(Response::new(pb::QueryStateResponse {
                token: if resp.results.is_empty() {
                    String::new()
                } else {
                    resp.token
                },
                results: resp
                    .results
                    .into_iter()
                    .map(|i| pb::QueryStateItem {
                        key: i.key,
                        data: i.data.to_vec(),
                        etag: i.etag.unwrap_or_default(),
                        error: String::new(),
                    })
                    .collect(),
                metadata: HashMap::new(),
            })),
            Err(e) => Err(match e.kind {
                layotto_core::ErrorKind::StoreNotFound | layotto_core::ErrorKind::NotConfigured => {
                    err(Block::State, "ERR_STATE_QUERY")(e)
                }
                layotto_core::ErrorKind::Unsupported => super::errors::status(
                    Block::State,
                    "DAPR_STATE_QUERYING_NOT_SUPPORTED",
                    Error::new(
                        layotto_core::ErrorKind::Internal,
                        "state store does not support querying",
                    ),
                ),
                _ => super::errors::status(
                    Block::State,
                    "DAPR_STATE_QUERY_FAILED",
                    Error::new(
                        layotto_core::ErrorKind::Internal,
                        format!("state store {} query failed: {}", r.store_name, e.message),
                    ),
                ),
            }),
        }
    }

    async fn delete_state(
        &self,
        req: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        dapr(self.api.delete_state(req.into_inner()).await)
    }

    async fn delete_bulk_state(
        &self,
        req: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        dapr(self.api.delete_bulk_state(req.into_inner()).await)
    }

    async fn execute_state_transaction(
        &self,
        req: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        dapr(self.api.execute_state_transaction(req.into_inner()).await)
    }

    async fn publish_event(
        &self,
        req: Request<pb::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        dapr(self.api.publish_event(req.into_inner()).await)
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

    type SubscribeTopicEventsAlpha1Stream = BoxStream<pb::SubscribeTopicEventsResponseAlpha1>;

    async fn subscribe_topic_events_alpha1(
        &self,
        req: Request<Streaming<pb::SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<Self::SubscribeTopicEventsAlpha1Stream>, Status> {
        dapr(stream_sub::subscribe::<DaprTopicStream>(&self.rt, req.into_inner()).await)
    }

    async fn invoke_binding(
        &self,
        req: Request<pb::InvokeBindingRequest>,
    ) -> Result<Response<pb::InvokeBindingResponse>, Status> {
        dapr(self.api.invoke_binding(req.into_inner()).await)
    }

    async fn get_secret(
        &self,
        req: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        dapr(self.api.get_secret(req.into_inner()).await)
    }

    async fn get_bulk_secret(
        &self,
        req: Request<pb::GetBulkSecretRequest>,
    ) -> Result<Response<pb::GetBulkSecretResponse>, Status> {
        dapr(self.api.get_bulk_secret(req.into_inner()).await)
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

    type SubscribeConfigurationAlpha1Stream = BoxStream<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration_alpha1(
        &self,
        req: Request<pb::SubscribeConfigurationRequest>,
    ) -> Result<Response<Self::SubscribeConfigurationAlpha1Stream>, Status> {
        self.do_subscribe_configuration(req.into_inner()).await
    }

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

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
        dapr(self.api.try_lock(req.into_inner()).await)
    }

    async fn unlock_alpha1(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        dapr(self.api.unlock(req.into_inner()).await)
    }

    async fn get_metadata(
        &self,
        _req: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let rt = &self.rt;
        let subscriptions = rt
            .subscriptions()
            .into_iter()
            .map(|s| pb::PubsubSubscription {
                pubsub_name: s.pubsub_name,
                topic: s.topic,
                rules: Some(pb::PubsubSubscriptionRules {
                    rules: s
                        .rules
                        .into_iter()
                        .map(|r| pb::PubsubSubscriptionRule {
                            r#match: r.match_,
                            path: r.path,
                        })
                        .collect(),
                }),
                metadata: s.metadata,
                dead_letter_topic: s.dead_letter_topic,
                r#type: match s.type_ {
                    SubscriptionType::Declarative => pb::PubsubSubscriptionType::Declarative,
                    SubscriptionType::Programmatic => pb::PubsubSubscriptionType::Programmatic,
                    SubscriptionType::Streaming => pb::PubsubSubscriptionType::Streaming,
                }
                .into(),
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
                    version: COMPONENT_VERSION.to_owned(),
                    capabilities: c.capabilities.clone(),
                })
                .collect(),
            extended_metadata: rt.attributes().into_iter().collect(),
            subscriptions,
            http_endpoints: rt
                .http_endpoint_names()
                .iter()
                .map(|n| pb::MetadataHttpEndpoint { name: n.clone() })
                .collect(),
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
