//! Metadata (`dapr/dapr:pkg/api/http/metadata.go`, `pkg/api/universal/metadata.go`;
//! docs.dapr.io "Metadata API reference").
//!
//! `GET /v1.0/metadata` answers Dapr's `metadataResponse` (empty fields left out as Go's
//! `omitempty` does):
//!
//! ```json
//! {"id": "app1", "runtimeVersion": "0.1.0",
//!  "components": [{"name": "state_demo", "type": "state.in-memory", "version": "v1",
//!                  "capabilities": ["ETAG", "TRANSACTIONAL", "TTL"]}],
//!  "extended": {"daprRuntimeVersion": "0.1.0", "<attribute>": "<value>"},
//!  "subscriptions": [{"pubsubname": "..", "topic": "..", "metadata": {..},
//!                     "rules": [{"match": "event.type == \"x\"", "path": ".."}, {"path": ".."}],
//!                     "deadLetterTopic": "", "type": "DECLARATIVE|PROGRAMMATIC|STREAMING"}],
//!  "httpEndpoints": [{"name": "payments"}],
//!  "appConnectionProperties": {"port": 3000, "protocol": "http", "channelAddress": "127.0.0.1"},
//!  "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": false}}
//! ```
//!
//! Each component's `capabilities` are the runtime's (`RegisteredComponent::capabilities`: the
//! component's own features plus what its block implies, e.g. `OUTPUT_BINDING`), the same list
//! the gRPC `GetMetadata` reports.
//!
//! `PUT /v1.0/metadata/{key}` stores the body (as text) as attribute `key`: 204.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use layotto_dapr_wire::metadata::{COMPONENT_VERSION, RUNTIME_VERSION_KEY};
use serde::Serialize;

use super::error::{ApiError, Op, err};
use super::extract::RawBody;
use super::{Ctx, json_ok, no_content};

#[derive(Serialize)]
struct MetadataOut {
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(rename = "runtimeVersion", skip_serializing_if = "String::is_empty")]
    runtime_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<ComponentOut>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extended: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions: Vec<SubscriptionOut>,
    #[serde(rename = "httpEndpoints", skip_serializing_if = "Vec::is_empty")]
    http_endpoints: Vec<EndpointOut>,
    #[serde(rename = "appConnectionProperties")]
    app_connection_properties: AppConnectionOut,
    #[serde(rename = "actorRuntime")]
    actor_runtime: ActorRuntimeOut,
}

#[derive(Serialize)]
struct ComponentOut {
    name: String,
    #[serde(rename = "type")]
    type_: String,
    version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    capabilities: Vec<String>,
}

#[derive(Serialize)]
struct SubscriptionOut {
    pubsubname: String,
    topic: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<RuleOut>,
    #[serde(rename = "deadLetterTopic")]
    dead_letter_topic: String,
    #[serde(rename = "type")]
    type_: &'static str,
}

#[derive(Serialize)]
struct EndpointOut {
    name: String,
}

#[derive(Serialize)]
struct RuleOut {
    #[serde(rename = "match", skip_serializing_if = "String::is_empty")]
    match_: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    path: String,
}

#[derive(Serialize, Default)]
struct AppConnectionOut {
    #[serde(skip_serializing_if = "is_zero")]
    port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
    #[serde(rename = "channelAddress", skip_serializing_if = "String::is_empty")]
    channel_address: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct ActorRuntimeOut {
    #[serde(rename = "runtimeStatus")]
    runtime_status: &'static str,
    #[serde(rename = "hostReady")]
    host_ready: bool,
}

/// `GET /v1.0/metadata`.
pub(crate) async fn get(State(ctx): State<Ctx>) -> Response {
    let rt = &ctx.rt;
    let mut extended = rt.attributes();
    extended.insert(
        RUNTIME_VERSION_KEY.to_owned(),
        ctx.shared.runtime_version.clone(),
    );
    let out = MetadataOut {
        id: rt.app_id().to_owned(),
        runtime_version: ctx.shared.runtime_version.clone(),
        components: rt
            .components()
            .iter()
            .map(|c| ComponentOut {
                name: c.name.clone(),
                type_: c.dapr_type(),
                version: COMPONENT_VERSION,
                capabilities: c.capabilities.clone(),
            })
            .collect(),
        extended,
        subscriptions: rt
            .subscriptions()
            .into_iter()
            .map(|s| SubscriptionOut {
                pubsubname: s.pubsub_name,
                topic: s.topic,
                metadata: s.metadata.into_iter().collect(),
                rules: s
                    .rules
                    .into_iter()
                    .map(|r| RuleOut {
                        match_: r.match_,
                        path: r.path,
                    })
                    .collect(),
                dead_letter_topic: s.dead_letter_topic,
                type_: s.type_.as_str(),
            })
            .collect(),
        http_endpoints: rt
            .http_endpoint_names()
            .iter()
            .map(|n| EndpointOut { name: n.clone() })
            .collect(),
        app_connection_properties: ctx
            .shared
            .app
            .as_ref()
            .map(|a| AppConnectionOut {
                port: a.port,
                protocol: a.protocol.clone(),
                channel_address: a.channel_address.clone(),
            })
            .unwrap_or_default(),
        actor_runtime: ActorRuntimeOut {
            runtime_status: "DISABLED",
            host_ready: false,
        },
    };
    json_ok(&out)
}

/// `PUT /v1.0/metadata/{key}`: the body is the value; 204.
pub(crate) async fn put(
    State(ctx): State<Ctx>,
    Path(key): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    ctx.rt
        .set_attribute(&key, &String::from_utf8_lossy(&body))
        .map_err(err(Op::Metadata))?;
    Ok(no_content())
}
