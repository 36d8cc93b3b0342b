//! `spec.proto.runtime.v1.Runtime` over [`layotto_runtime::Runtime`].
//!
//! The rpcs Dapr also has (state, publish, bindings, secrets, lock, service invocation) are
//! answered by the shared handlers ([`crate::dapr::shared`]), as `mosn/layotto` delegates
//! them to its Dapr API: the request is converted to Dapr's ([`crate::layotto_dapr`]), the
//! answer converted back and a failure worded as Layotto words it. The rest is Layotto's own:
//! hello, configuration (group, label and tags, which Dapr's configuration API lacks), lock
//! keep-alive, sequencer, files and the streaming subscription.

use std::sync::Arc;

use futures::StreamExt;
use layotto_core::Error;
use layotto_core::file::ListRequest;
use layotto_core::lock::LockStatus;
use layotto_proto::runtime as pb;
use layotto_proto::runtime::runtime_server::Runtime as RuntimeApi;
use layotto_runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::dapr::errors::Failure;
use crate::dapr::shared::DaprApi;
use crate::layotto_dapr;
use crate::status::{IntoStatus, to_status};
use crate::{BoxStream, stream_sub};

stream_sub::topic_stream!(
    LayottoTopicStream, "SubscribeTopicEvents",
    request: pb::SubscribeTopicEventsRequest,
    request_type: pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType,
    response: pb::SubscribeTopicEventsResponse,
    response_type: pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType,
    initial_response: pb::SubscribeTopicEventsResponseInitial {},
    event: convert::topic_event,
    outcome: crate::app_channel::outcome,
    dead_letter: |_: &pb::SubscribeTopicEventsRequestInitial| None,
);

/// Serves the Layotto runtime API.
pub struct RuntimeService {
    rt: Arc<Runtime>,
    /// The handlers shared with the Dapr API.
    dapr: DaprApi,
}

/// A shared handler's answer as Layotto sends it.
fn layotto<T>(answer: Result<T, Failure>) -> Result<Response<T>, Status> {
    answer.map(Response::new).map_err(Failure::layotto)
}

impl RuntimeService {
    /// A service over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            dapr: DaprApi { rt: rt.clone() },
            rt,
        }
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
        req: Request<pb::InvokeServiceRequest>,
    ) -> Result<Response<pb::InvokeResponse>, Status> {
        self.dapr
            .invoke_service(req.map(layotto_dapr::invoke_service))
            .await
            .map(|r| r.map(layotto_dapr::invoke_response))
            .map_err(Failure::layotto)
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

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

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
            let svc = RuntimeService::new(rt);
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
        layotto(
            self.dapr
                .try_lock(layotto_dapr::try_lock(req.into_inner()))
                .await
                .map(layotto_dapr::try_lock_response),
        )
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        layotto(
            self.dapr
                .unlock(layotto_dapr::unlock(req.into_inner()))
                .await
                .map(layotto_dapr::unlock_response),
        )
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
        layotto(
            self.dapr
                .get_state(layotto_dapr::get_state(req.into_inner()))
                .await
                .map(layotto_dapr::get_state_response),
        )
    }

    async fn get_bulk_state(
        &self,
        req: Request<pb::GetBulkStateRequest>,
    ) -> Result<Response<pb::GetBulkStateResponse>, Status> {
        layotto(
            self.dapr
                .get_bulk_state(layotto_dapr::get_bulk_state(req.into_inner()))
                .await
                .map(layotto_dapr::get_bulk_state_response),
        )
    }

    async fn save_state(&self, req: Request<pb::SaveStateRequest>) -> Result<Response<()>, Status> {
        layotto(
            self.dapr
                .save_state(layotto_dapr::save_state(req.into_inner()))
                .await,
        )
    }

    async fn delete_state(
        &self,
        req: Request<pb::DeleteStateRequest>,
    ) -> Result<Response<()>, Status> {
        layotto(
            self.dapr
                .delete_state(layotto_dapr::delete_state(req.into_inner()))
                .await,
        )
    }

    async fn delete_bulk_state(
        &self,
        req: Request<pb::DeleteBulkStateRequest>,
    ) -> Result<Response<()>, Status> {
        layotto(
            self.dapr
                .delete_bulk_state(layotto_dapr::delete_bulk_state(req.into_inner()))
                .await,
        )
    }

    async fn execute_state_transaction(
        &self,
        req: Request<pb::ExecuteStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        layotto(
            self.dapr
                .execute_state_transaction(layotto_dapr::transaction(req.into_inner()))
                .await,
        )
    }

    async fn publish_event(
        &self,
        req: Request<pb::PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        layotto(
            self.dapr
                .publish_event(layotto_dapr::publish_event(req.into_inner()))
                .await,
        )
    }

    type GetFileStream = BoxStream<pb::GetFileResponse>;

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
        layotto(
            self.dapr
                .invoke_binding(layotto_dapr::invoke_binding(req.into_inner()))
                .await
                .map(layotto_dapr::invoke_binding_response),
        )
    }

    async fn get_secret(
        &self,
        req: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        layotto(
            self.dapr
                .get_secret(layotto_dapr::get_secret(req.into_inner()))
                .await
                .map(layotto_dapr::get_secret_response),
        )
    }

    async fn get_bulk_secret(
        &self,
        req: Request<pb::GetBulkSecretRequest>,
    ) -> Result<Response<pb::GetBulkSecretResponse>, Status> {
        layotto(
            self.dapr
                .get_bulk_secret(layotto_dapr::get_bulk_secret(req.into_inner()))
                .await
                .map(layotto_dapr::get_bulk_secret_response),
        )
    }

    type SubscribeTopicEventsStream = BoxStream<pb::SubscribeTopicEventsResponse>;

    async fn subscribe_topic_events(
        &self,
        req: Request<Streaming<pb::SubscribeTopicEventsRequest>>,
    ) -> Result<Response<Self::SubscribeTopicEventsStream>, Status> {
        layotto(stream_sub::subscribe::<LayottoTopicStream>(&self.rt, req.into_inner()).await)
    }
}
