//! The app channel: how the runtime reaches the application (subscriptions, event delivery).
//!
//! The runtime defines the contract; the edge implements it over the wire (gRPC AppCallback
//! today), so nothing here knows a transport.

use async_trait::async_trait;
use layotto_core::Metadata;

use crate::cloudevent::TopicEvent;

/// A topic the app subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSubscription {
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic.
    pub topic: String,
    /// Subscription metadata.
    pub metadata: Metadata,
}

/// The app's answer to one event (Layotto's `TopicEventResponseStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Processed: acknowledge.
    Success,
    /// Redeliver later.
    Retry,
    /// Do not redeliver (acknowledged with a warning).
    Drop,
}

/// Why the app could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The app does not implement the callback.
    Unimplemented,
    /// The app is not reachable or failed; try again later.
    Unavailable(String),
}

impl std::error::Error for ChannelError {}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unimplemented => f.write_str("app does not implement this callback"),
            Self::Unavailable(m) => write!(f, "app unavailable: {m}"),
        }
    }
}

/// A connection to the application.
#[async_trait]
pub trait AppChannel: Send + Sync {
    /// The app's topic subscriptions.
    async fn list_subscriptions(&self) -> Result<Vec<TopicSubscription>, ChannelError>;
    /// Delivers one event and returns the app's answer.
    async fn deliver(&self, event: &TopicEvent) -> Result<EventOutcome, ChannelError>;
}
