//! `spec.proto.runtime.v1.Runtime` over [`layotto_runtime::Runtime`].

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use layotto_core::Error;
use layotto_core::binding::BindingRequest;
use layotto_core::file::ListRequest;
use layotto_core::lock::LockStatus;
use layotto_proto::runtime as pb;
use layotto_proto::runtime::runtime_server::Runtime as RuntimeApi;
use layotto_runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::status::{IntoStatus, to_status};
use crate::stream_sub::Pending;

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves the Layotto runtime API.
pub struct RuntimeService {
    rt: Arc<Runtime>,
}

impl RuntimeService {
    /// A service over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }

    /// Subscribes `r` and forwards its change batches to `tx` until either side closes.
    async fn forward_config_changes(
        &self,
        r: pb::SubscribeConfigurationRequest,
        tx: mpsc::Sender<Result<pb::SubscribeConfigurationResponse, Status>>,
    ) -> Result<tokio::task::JoinHandle<()>, Status> {
        let q = convert::config_query(r.app_id.clone(), r.group, r.label, r.keys, r.metadata);
        let mut changes = self
            .rt
            .subscribe_configuration(&r.store_name, q)
            .await
            .status()?;
        let (store, app_id) = (r.store_name, r.app_id);
        Ok(tokio::spawn(async move {
            while let Some(items) = changes.recv().await {
                let resp = pb::SubscribeConfigurationResponse {
                    store_name: store.clone(),
                    app_id: app_id.clone(),
                    items: items.into_iter().map(convert::config_item_pb).collect(),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        }))
    }
}

fn unlock_status(s: LockStatus) -> i32 {
    use pb::unlock_response::Status as S;
    match s {
        LockStatus::Success => S::Success,
        LockStatus::LockUnexist => S::LockUnexist,
        LockStatus::LockBelongToOthers => S::LockBelongToOthers,
        LockStatus::InternalError => S::InternalError,
    }
    .into()
}

fn keep_alive_status(s: LockStatus) -> i32 {
    use pb::lock_keep_alive_response::Status as S;
    match s {
        LockStatus::Success => S::Success,
        LockStatus::LockUnexist => S::LockUnexist,
        LockStatus::LockBelongToOthers => S::LockBelongToOthers,
        LockStatus::InternalError => S::InternalError,
    }
    .into()
}

fn file_request(r: Option<pb::FileRequest>) -> Result<pb::FileRequest, Status> {
    r.ok_or_else(|| Status::invalid_argument("request is empty"))
}

#[tonic::async_trait]
impl RuntimeApi for RuntimeService {
    async fn say_hello(
        &self,
        req: Request<pb::SayHelloRequest>,
    ) -> Result<Response<pb::SayHelloResponse>, Status> {
        let r = req.into_inner();
        let hello = self.rt.say_hello(&r.service_name, &r.name).await.status()?;
        Ok(Response::new(pb::SayHelloResponse {
            hello,
            data: r.data,
        }))
    }

    async fn invoke_service(
        &self,
        _req: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<pb::InvokeResponse>, Status> {
        Err(Status::unimplemented(
            "InvokeService is not supported by this sidecar yet",
        ))
    }

    async fn get_configuration(
        &self,
        req: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        let r = req.into_inner();
        let q = convert::config_query(r.app_id, r.group, r.label, r.keys, r.metadata);
        let items = self.rt.get_configuration(&r.store_name, q).await.status()?;
        Ok(Response::new(pb::GetConfigurationResponse {
            items: items.into_iter().map(convert::config_item_pb).collect(),
        }))
    }

    async fn save_configuration(
        &self,
        req: Request<pb::SaveConfigurationRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let items = r.items.into_iter().map(convert::config_item).collect();
        self.rt
            .save_configuration(&r.store_name, &r.app_id, items, &r.metadata)
            .await
            .status()?;
        Ok(Response::new(()))
    }

    async fn delete_configuration(
        &self,
        req: Request<pb::DeleteConfigurationRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let q = convert::config_query(r.app_id, r.group, r.label, r.keys, r.metadata);
        self.rt
            .delete_configuration(&r.store_name, q)
            .await
            .status()?;
        Ok(Response::new(()))
    }

    type SubscribeConfigurationStream = Stream2<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration(
        &self,
        req: Request<Streaming<pb::SubscribeConfigurationRequest>>,
    ) -> Result<Response<Self::SubscribeConfigurationStream>, Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        // The first request is subscribed before the response starts, so a change made right
        // after the call returns is never missed.
        let first = match incoming.next().await {
            Some(r) => r?,
            None => return Ok(Response::new(Box::pin(ReceiverStream::new(rx)))),
        };
        let mut forwarders = vec![self.forward_config_changes(first, tx.clone()).await?];
        let rt = self.rt.clone();
        tokio::spawn(async move {
            let svc = RuntimeService { rt };
            while let Some(Ok(r)) = incoming.next().await {
                match svc.forward_config_changes(r, tx.clone()).await {
                    Ok(f) => forwarders.push(f),
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        break;
                    }
                }
            }
            // The client closed its side: keep forwarding until it hangs up entirely.
            tx.closed().await;
            for f in forwarders {
                f.abort();
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn try_lock(
        &self,
        req: Request<pb::TryLockRequest>,
    ) -> Result<Response<pb::TryLockResponse>, Status> {
        let r = req.into_inner();
        let success = self
            .rt
            .try_lock(&r.store_name, &r.resource_id, &r.lock_owner, r.expire)
            .await
            .status()?;
        Ok(Response::new(pb::TryLockResponse { success }))
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let r = req.into_inner();
        let s = self
            .rt
            .unlock(&r.store_name, &r.resource_id, &r.lock_owner)
            .await
            .status()?;
        Ok(Response::new(pb::UnlockResponse {
            status: unlock_status(s),
        }))
    }

    async fn lock_keep_alive(
        &self,
        req: Request<pb::LockKeepAliveRequest>,
    ) -> Result<Response<pb::LockKeepAliveResponse>, Status> {
        let r = req.into_inner();
        let s = self
            .rt
            .lock_keep_alive(&r.store_name, &r.resource_id, &r.lock_owner, r.expire)
            .await
            .status()?;
        Ok(Response::new(pb::LockKeepAliveResponse {
            status: keep_alive_status(s),
        }))
    }

    async fn get_next_id(
        &self,
        req: Request<pb::GetNextIdRequest>,
    ) -> Result<Response<pb::GetNextIdResponse>, Status> {
        let r = req.into_inner();
        // No options at all: the strict guarantee. Options with the wire default: WEAK.
        let strong = r
            .options
            .is_none_or(|o| o.increment == i32::from(pb::sequencer_options::AutoIncrement::Strong));
        let next_id = self
            .rt
            .next_id(&r.store_name, &r.key, strong)
            .await
            .status()?;
        Ok(Response::new(pb::GetNextIdResponse { next_id }))
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
            .status()?;
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
            .status()?;
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
        let items = r
            .states
            .into_iter()
            .map(convert::layotto_state::set_request)
            .collect();
        self.rt.save_state(&r.store_name, items).await.status()?;
        Ok(Response::new(()))
    }

    async fn delete_state(
        &self,
        req: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let d = layotto_core::state::DeleteRequest {
            key: r.key,
            etag: convert::layotto_state::etag(r.etag),
            metadata: r.metadata,
            options: convert::layotto_state::options(r.options),
        };
        self.rt
            .delete_state(&r.store_name, vec![d])
            .await
            .status()?;
        Ok(Response::new(()))
    }

    async fn delete_bulk_state(
        &self,
        req: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let reqs = r
            .states
            .into_iter()
            .map(convert::layotto_state::delete_request)
            .collect();
        self.rt.delete_state(&r.store_name, reqs).await.status()?;
        Ok(Response::new(()))
    }

    async fn execute_state_transaction(
        &self,
        req: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let ops = convert::layotto_state::transaction(r.operations).status()?;
        self.rt
            .transact_state(&r.store_name, ops, &r.metadata)
            .await
            .status()?;
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
            .status()?;
        Ok(Response::new(()))
    }

    type GetFileStream = Stream2<pb::GetFileResponse>;

    async fn get_file(
        &self,
        req: Request<pb::GetFileRequest>,
    ) -> Result<Response<Self::GetFileStream>, Status> {
        let r = req.into_inner();
        let stream = self
            .rt
            .get_file(&r.store_name, &r.name, &r.metadata)
            .await
            .status()?;
        Ok(Response::new(Box::pin(stream.map(|chunk| {
            chunk
                .map(|data| pb::GetFileResponse {
                    data: data.to_vec(),
                })
                .map_err(to_status)
        }))))
    }

    async fn put_file(
        &self,
        req: Request<Streaming<pb::PutFileRequest>>,
    ) -> Result<Response<()>, Status> {
        let mut incoming = req.into_inner();
        let first = incoming
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("PutFile stream carried no message"))??;
        let rest = incoming.map(|m| {
            m.map(|m| bytes::Bytes::from(m.data))
                .map_err(|s| Error::invalid(format!("PutFile stream failed: {}", s.message())))
        });
        let data =
            futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(first.data))))
                .chain(rest)
                .boxed();
        self.rt
            .put_file(&first.store_name, &first.name, data, &first.metadata)
            .await
            .status()?;
        Ok(Response::new(()))
    }

    async fn list_file(
        &self,
        req: Request<pb::ListFileRequest>,
    ) -> Result<Response<pb::ListFileResp>, Status> {
        let r = req.into_inner();
        let fr = file_request(r.request)?;
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must not be negative"))?;
        let page = self
            .rt
            .list_files(
                &fr.store_name,
                &ListRequest {
                    directory: fr.name,
                    page_size,
                    marker: r.marker,
                    metadata: fr.metadata,
                },
            )
            .await
            .status()?;
        Ok(Response::new(pb::ListFileResp {
            files: page
                .files
                .into_iter()
                .map(|f| pb::FileInfo {
                    file_name: f.name,
                    size: f.size,
                    last_modified: f.last_modified,
                    metadata: f.metadata,
                })
                .collect(),
            marker: page.marker,
            is_truncated: page.is_truncated,
        }))
    }

    async fn del_file(&self, req: Request<pb::DelFileRequest>) -> Result<Response<()>, Status> {
        let fr = file_request(req.into_inner().request)?;
        self.rt
            .delete_file(&fr.store_name, &fr.name, &fr.metadata)
            .await
            .status()?;
        Ok(Response::new(()))
    }

    async fn get_file_meta(
        &self,
        req: Request<pb::GetFileMetaRequest>,
    ) -> Result<Response<pb::GetFileMetaResponse>, Status> {
        let fr = file_request(req.into_inner().request)?;
        let m = self
            .rt
            .file_meta(&fr.store_name, &fr.name, &fr.metadata)
            .await
            .status()?;
        Ok(Response::new(pb::GetFileMetaResponse {
            size: m.size,
            last_modified: m.last_modified,
            response: Some(pb::FileMeta {
                metadata: m
                    .metadata
                    .into_iter()
                    .map(|(k, value)| (k, pb::FileMetaValue { value }))
                    .collect(),
            }),
        }))
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
            .status()?;
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
            .status()?;
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
            .status()?;
        Ok(Response::new(pb::GetBulkSecretResponse {
            data: all
                .into_iter()
                .map(|(k, secrets)| (k, pb::SecretResponse { secrets }))
                .collect(),
        }))
    }

    type SubscribeTopicEventsStream = Stream2<pb::SubscribeTopicEventsResponse>;

    async fn subscribe_topic_events(
        &self,
        req: Request<Streaming<pb::SubscribeTopicEventsRequest>>,
    ) -> Result<Response<Self::SubscribeTopicEventsStream>, Status> {
        use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
        use pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
        let mut incoming = req.into_inner();
        let initial = match incoming.next().await {
            Some(Ok(pb::SubscribeTopicEventsRequest {
                subscribe_topic_events_request_type: Some(In::InitialRequest(i)),
            })) => i,
            Some(Err(s)) => return Err(s),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of SubscribeTopicEvents must be initial_request",
                ));
            }
        };
        let pending = Pending::default();
        let (tx, rx) = mpsc::channel::<Result<pb::SubscribeTopicEventsResponse, Status>>(64);
        let handler = pending.handler(tx.clone(), |ev| pb::SubscribeTopicEventsResponse {
            subscribe_topic_events_response_type: Some(Out::EventMessage(convert::topic_event(ev))),
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
            .status()?;
        let first = pb::SubscribeTopicEventsResponse {
            subscribe_topic_events_response_type: Some(Out::InitialResponse(
                pb::SubscribeTopicEventsResponseInitial {},
            )),
        };
        let _ = tx.send(Ok(first)).await;
        tokio::spawn(async move {
            while let Some(Ok(msg)) = incoming.next().await {
                if let Some(In::EventProcessed(p)) = msg.subscribe_topic_events_request_type {
                    let outcome = crate::app_channel::outcome(p.status.map_or(0, |s| s.status));
                    pending.ack(&p.id, outcome);
                }
            }
            // Stream ended: stop delivery; unacknowledged events go back to the group.
            drop(subscription);
            pending.clear();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
