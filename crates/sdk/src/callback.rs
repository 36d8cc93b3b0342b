//! Serving the app side: `spec.proto.runtime.v1.AppCallback`.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use layotto_proto::runtime as pb;
use pb::app_callback_server::{AppCallback, AppCallbackServer};
use tonic::{Request, Response, Status};

/// The app's answer to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Processed.
    Success,
    /// Redeliver later.
    Retry,
    /// Do not redeliver.
    Drop,
}

impl EventStatus {
    pub(crate) fn wire(self) -> i32 {
        use pb::topic_event_response::TopicEventResponseStatus as S;
        match self {
            Self::Success => S::Success,
            Self::Retry => S::Retry,
            Self::Drop => S::Drop,
        }
        .into()
    }
}

/// Handles delivered events.
pub trait TopicHandler: Send + Sync + 'static {
    /// Processes one event.
    fn on_event(&self, event: pb::TopicEventRequest) -> BoxFuture<'static, EventStatus>;
}

impl<F> TopicHandler for F
where
    F: Fn(pb::TopicEventRequest) -> BoxFuture<'static, EventStatus> + Send + Sync + 'static,
{
    fn on_event(&self, event: pb::TopicEventRequest) -> BoxFuture<'static, EventStatus> {
        self(event)
    }
}

struct Service {
    subscriptions: Vec<pb::TopicSubscription>,
    handler: Arc<dyn TopicHandler>,
}

#[tonic::async_trait]
impl AppCallback for Service {
    async fn list_topic_subscriptions(
        &self,
        _req: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(pb::ListTopicSubscriptionsResponse {
            subscriptions: self.subscriptions.clone(),
        }))
    }

    async fn on_topic_event(
        &self,
        req: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let status = self.handler.on_event(req.into_inner()).await;
        Ok(Response::new(pb::TopicEventResponse {
            status: status.wire(),
        }))
    }
}

/// Serves an AppCallback on `listener` announcing `subscriptions` and passing each event to
/// `handler`, until `shutdown` completes.
///
/// # Errors
/// The server failed.
pub async fn serve_app_callback(
    listener: tokio::net::TcpListener,
    subscriptions: Vec<pb::TopicSubscription>,
    handler: impl TopicHandler,
    shutdown: impl Future<Output = ()> + Send,
) -> crate::Result<()> {
    let svc = Service {
        subscriptions,
        handler: Arc::new(handler),
    };
    tonic::transport::Server::builder()
        .add_service(AppCallbackServer::new(svc))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
