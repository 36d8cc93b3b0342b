//! The typed client.

use std::collections::HashMap;

use futures::StreamExt;
use layotto_proto::runtime as pb;
use pb::lifecycle_client::LifecycleClient;
use pb::runtime_client::RuntimeClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::{EventStatus, Result};

/// A value read from a state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The value.
    pub data: Vec<u8>,
    /// Its ETag.
    pub etag: String,
    /// Store metadata, e.g. `ttlExpireTime`.
    pub metadata: HashMap<String, String>,
}

/// The guarantee asked of `GetNextId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Increment {
    /// Unique; increasing per sidecar (served from segments).
    Weak,
    /// Unique and globally increasing (every id from the store).
    Strong,
}

/// A client of the Runtime and Lifecycle services. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    rt: RuntimeClient<Channel>,
    lifecycle: LifecycleClient<Channel>,
}

impl Client {
    /// Connects to `uri`, e.g. `http://127.0.0.1:34904`.
    ///
    /// # Errors
    /// [`crate::Error::Transport`] if the sidecar cannot be reached.
    pub async fn connect(uri: impl Into<String>) -> Result<Self> {
        let ch = Endpoint::from_shared(uri.into())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(Self::from_channel(ch))
    }

    /// A client over an existing channel.
    pub fn from_channel(ch: Channel) -> Self {
        Self {
            rt: RuntimeClient::new(ch.clone())
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            lifecycle: LifecycleClient::new(ch),
        }
    }

    /// The raw generated client, for anything not covered here.
    pub fn raw(&self) -> RuntimeClient<Channel> {
        self.rt.clone()
    }

    /// `SayHello` on hello component `service_name`.
    pub async fn say_hello(&self, service_name: &str, name: &str) -> Result<String> {
        let r = self
            .rt
            .clone()
            .say_hello(pb::SayHelloRequest {
                service_name: service_name.into(),
                name: name.into(),
                data: None,
            })
            .await?;
        Ok(r.into_inner().hello)
    }

    /// Saves one key (last write wins, no TTL).
    pub async fn save_state(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
        self.save_states(
            store,
            vec![pb::StateItem {
                key: key.into(),
                value,
                ..Default::default()
            }],
        )
        .await
    }

    /// Saves full state items (ETag, options, metadata such as `ttlInSeconds`).
    pub async fn save_states(&self, store: &str, states: Vec<pb::StateItem>) -> Result<()> {
        self.rt
            .clone()
            .save_state(pb::SaveStateRequest {
                store_name: store.into(),
                states,
            })
            .await?;
        Ok(())
    }

    /// Reads one key; `None` when absent.
    pub async fn get_state(&self, store: &str, key: &str) -> Result<Option<State>> {
        let r = self
            .rt
            .clone()
            .get_state(pb::GetStateRequest {
                store_name: store.into(),
                key: key.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok((!r.etag.is_empty() || !r.data.is_empty()).then_some(State {
            data: r.data,
            etag: r.etag,
            metadata: r.metadata,
        }))
    }

    /// Reads many keys.
    pub async fn get_bulk_state(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<pb::BulkStateItem>> {
        let r = self
            .rt
            .clone()
            .get_bulk_state(pb::GetBulkStateRequest {
                store_name: store.into(),
                keys,
                ..Default::default()
            })
            .await?;
        Ok(r.into_inner().items)
    }

    /// Deletes one key, checking `etag` when given.
    pub async fn delete_state(&self, store: &str, key: &str, etag: Option<&str>) -> Result<()> {
        self.rt
            .clone()
            .delete_state(pb::DeleteStateRequest {
                store_name: store.into(),
                key: key.into(),
                etag: etag.map(|e| pb::Etag { value: e.into() }),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Deletes many keys.
    pub async fn delete_bulk_state(&self, store: &str, states: Vec<pb::StateItem>) -> Result<()> {
        self.rt
            .clone()
            .delete_bulk_state(pb::DeleteBulkStateRequest {
                store_name: store.into(),
                states,
            })
            .await?;
        Ok(())
    }

    /// Runs `operations` (`"upsert"` / `"delete"`) atomically.
    pub async fn execute_state_transaction(
        &self,
        store: &str,
        operations: Vec<pb::TransactionalStateOperation>,
    ) -> Result<()> {
        self.rt
            .clone()
            .execute_state_transaction(pb::ExecuteStateTransactionRequest {
                store_name: store.into(),
                operations,
                metadata: HashMap::new(),
            })
            .await?;
        Ok(())
    }

    /// Tries to take `resource` for `owner` for `expire_secs` seconds.
    pub async fn try_lock(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire_secs: i32,
    ) -> Result<bool> {
        let r = self
            .rt
            .clone()
            .try_lock(pb::TryLockRequest {
                store_name: store.into(),
                resource_id: resource.into(),
                lock_owner: owner.into(),
                expire: expire_secs,
            })
            .await?;
        Ok(r.into_inner().success)
    }

    /// Releases `resource`; returns the wire status.
    pub async fn unlock(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> Result<pb::unlock_response::Status> {
        let r = self
            .rt
            .clone()
            .unlock(pb::UnlockRequest {
                store_name: store.into(),
                resource_id: resource.into(),
                lock_owner: owner.into(),
            })
            .await?;
        Ok(r.into_inner().status())
    }

    /// Extends the lease of `resource` to `expire_secs` seconds from now.
    pub async fn lock_keep_alive(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
        expire_secs: i32,
    ) -> Result<pb::lock_keep_alive_response::Status> {
        let r = self
            .rt
            .clone()
            .lock_keep_alive(pb::LockKeepAliveRequest {
                store_name: store.into(),
                resource_id: resource.into(),
                lock_owner: owner.into(),
                expire: expire_secs,
            })
            .await?;
        Ok(r.into_inner().status())
    }

    /// The next unique id of `key`.
    pub async fn get_next_id(&self, store: &str, key: &str, increment: Increment) -> Result<i64> {
        let inc = match increment {
            Increment::Weak => pb::sequencer_options::AutoIncrement::Weak,
            Increment::Strong => pb::sequencer_options::AutoIncrement::Strong,
        };
        let r = self
            .rt
            .clone()
            .get_next_id(pb::GetNextIdRequest {
                store_name: store.into(),
                key: key.into(),
                options: Some(pb::SequencerOptions {
                    increment: inc.into(),
                }),
                metadata: HashMap::new(),
            })
            .await?;
        Ok(r.into_inner().next_id)
    }

    /// Reads configuration items.
    pub async fn get_configuration(
        &self,
        req: pb::GetConfigurationRequest,
    ) -> Result<Vec<pb::ConfigurationItem>> {
        Ok(self
            .rt
            .clone()
            .get_configuration(req)
            .await?
            .into_inner()
            .items)
    }

    /// Saves configuration items.
    pub async fn save_configuration(&self, req: pb::SaveConfigurationRequest) -> Result<()> {
        self.rt.clone().save_configuration(req).await?;
        Ok(())
    }

    /// Deletes configuration items.
    pub async fn delete_configuration(&self, req: pb::DeleteConfigurationRequest) -> Result<()> {
        self.rt.clone().delete_configuration(req).await?;
        Ok(())
    }

    /// Subscribes to configuration changes; each stream item is one batch of changed items.
    pub async fn subscribe_configuration(
        &self,
        req: pb::SubscribeConfigurationRequest,
    ) -> Result<tonic::Streaming<pb::SubscribeConfigurationResponse>> {
        let out = tokio_stream::iter(vec![req]).chain(futures::stream::pending());
        Ok(self
            .rt
            .clone()
            .subscribe_configuration(out)
            .await?
            .into_inner())
    }

    /// Publishes `data` to `topic` with `content_type` (empty: detected).
    pub async fn publish_event(
        &self,
        pubsub: &str,
        topic: &str,
        data: Vec<u8>,
        content_type: &str,
    ) -> Result<()> {
        self.rt
            .clone()
            .publish_event(pb::PublishEventRequest {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                data,
                data_content_type: content_type.into(),
                metadata: HashMap::new(),
            })
            .await?;
        Ok(())
    }

    /// Opens a streaming subscription to `topic` (layotto-rs extension `SubscribeTopicEvents`).
    pub async fn subscribe_topic_events(&self, pubsub: &str, topic: &str) -> Result<TopicEvents> {
        use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
        let (tx, rx) = mpsc::channel(64);
        let initial = pb::SubscribeTopicEventsRequest {
            subscribe_topic_events_request_type: Some(In::InitialRequest(
                pb::SubscribeTopicEventsRequestInitial {
                    pubsub_name: pubsub.into(),
                    topic: topic.into(),
                    metadata: HashMap::new(),
                },
            )),
        };
        // The channel has room: this send cannot wait.
        let _ = tx.send(initial).await;
        let mut inbound = self
            .rt
            .clone()
            .subscribe_topic_events(ReceiverStream::new(rx))
            .await?
            .into_inner();
        // The sidecar confirms the subscription before any event.
        let _ = inbound.message().await?;
        Ok(TopicEvents { inbound, acks: tx })
    }

    /// Reads a whole file.
    pub async fn get_file(&self, store: &str, name: &str) -> Result<Vec<u8>> {
        let mut s = self
            .rt
            .clone()
            .get_file(pb::GetFileRequest {
                store_name: store.into(),
                name: name.into(),
                metadata: HashMap::new(),
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = s.message().await? {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// Writes a whole file, streamed in 64 KiB chunks.
    pub async fn put_file(&self, store: &str, name: &str, data: &[u8]) -> Result<()> {
        let mut msgs: Vec<pb::PutFileRequest> = data
            .chunks(64 * 1024)
            .map(|c| pb::PutFileRequest {
                data: c.to_vec(),
                ..Default::default()
            })
            .collect();
        if msgs.is_empty() {
            msgs.push(pb::PutFileRequest::default());
        }
        if let Some(first) = msgs.first_mut() {
            first.store_name = store.into();
            first.name = name.into();
        }
        self.rt.clone().put_file(tokio_stream::iter(msgs)).await?;
        Ok(())
    }

    /// Lists one page of files under `dir`.
    pub async fn list_file(
        &self,
        store: &str,
        dir: &str,
        page_size: i32,
        marker: &str,
    ) -> Result<pb::ListFileResp> {
        let r = self
            .rt
            .clone()
            .list_file(pb::ListFileRequest {
                request: Some(pb::FileRequest {
                    store_name: store.into(),
                    name: dir.into(),
                    metadata: HashMap::new(),
                }),
                page_size,
                marker: marker.into(),
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Deletes a file.
    pub async fn del_file(&self, store: &str, name: &str) -> Result<()> {
        self.rt
            .clone()
            .del_file(pb::DelFileRequest {
                request: Some(pb::FileRequest {
                    store_name: store.into(),
                    name: name.into(),
                    metadata: HashMap::new(),
                }),
            })
            .await?;
        Ok(())
    }

    /// Size (bytes) and modification time of a file.
    pub async fn get_file_meta(&self, store: &str, name: &str) -> Result<pb::GetFileMetaResponse> {
        let r = self
            .rt
            .clone()
            .get_file_meta(pb::GetFileMetaRequest {
                request: Some(pb::FileRequest {
                    store_name: store.into(),
                    name: name.into(),
                    metadata: HashMap::new(),
                }),
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Invokes output binding `name` with `operation`.
    pub async fn invoke_binding(
        &self,
        name: &str,
        operation: &str,
        data: Vec<u8>,
        metadata: HashMap<String, String>,
    ) -> Result<pb::InvokeBindingResponse> {
        let r = self
            .rt
            .clone()
            .invoke_binding(pb::InvokeBindingRequest {
                name: name.into(),
                data,
                metadata,
                operation: operation.into(),
            })
            .await?;
        Ok(r.into_inner())
    }

    /// Reads secret `key` of `store`.
    pub async fn get_secret(&self, store: &str, key: &str) -> Result<HashMap<String, String>> {
        let r = self
            .rt
            .clone()
            .get_secret(pb::GetSecretRequest {
                store_name: store.into(),
                key: key.into(),
                metadata: HashMap::new(),
            })
            .await?;
        Ok(r.into_inner().data)
    }

    /// Reads every secret of `store`.
    pub async fn get_bulk_secret(
        &self,
        store: &str,
    ) -> Result<HashMap<String, HashMap<String, String>>> {
        let r = self
            .rt
            .clone()
            .get_bulk_secret(pb::GetBulkSecretRequest {
                store_name: store.into(),
                metadata: HashMap::new(),
            })
            .await?;
        Ok(r.into_inner()
            .data
            .into_iter()
            .map(|(k, v)| (k, v.secrets))
            .collect())
    }

    /// Lifecycle `ApplyConfiguration` for component `name` of `kind` (e.g. `"hellos"`).
    pub async fn apply_configuration(
        &self,
        kind: &str,
        name: &str,
        metadata: HashMap<String, String>,
    ) -> Result<()> {
        self.lifecycle
            .clone()
            .apply_configuration(pb::DynamicConfiguration {
                component_config: Some(pb::ComponentConfig {
                    kind: kind.into(),
                    name: name.into(),
                    metadata,
                }),
            })
            .await?;
        Ok(())
    }
}

/// A streaming subscription: read events with [`TopicEvents::next`], answer each with
/// [`TopicEvents::ack`]. Dropping it ends the subscription; unacknowledged events are redelivered.
pub struct TopicEvents {
    inbound: tonic::Streaming<pb::SubscribeTopicEventsResponse>,
    acks: mpsc::Sender<pb::SubscribeTopicEventsRequest>,
}

impl TopicEvents {
    /// The next event; `None` when the sidecar ended the stream.
    pub async fn next(&mut self) -> Result<Option<pb::TopicEventRequest>> {
        use pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
        while let Some(m) = self.inbound.message().await? {
            if let Some(Out::EventMessage(ev)) = m.subscribe_topic_events_response_type {
                return Ok(Some(ev));
            }
        }
        Ok(None)
    }

    /// Answers event `id` with `status`.
    pub async fn ack(&self, id: &str, status: EventStatus) -> Result<()> {
        use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
        let msg = pb::SubscribeTopicEventsRequest {
            subscribe_topic_events_request_type: Some(In::EventProcessed(
                pb::SubscribeTopicEventsRequestProcessed {
                    id: id.into(),
                    status: Some(pb::TopicEventResponse {
                        status: status.wire(),
                    }),
                },
            )),
        };
        self.acks
            .send(msg)
            .await
            .map_err(|_| tonic::Status::unavailable("subscription stream closed"))?;
        Ok(())
    }
}
