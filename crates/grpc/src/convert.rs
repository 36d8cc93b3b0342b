//! Proto <-> domain conversions.

use layotto_core::configuration::{ConfigItem, ConfigQuery};
use layotto_proto::runtime as pb;
use layotto_runtime::TopicEvent;

/// Dapr's state messages (`dapr.proto.common.v1` items, `dapr.proto.runtime.v1` operations)
/// as domain requests; the Layotto API's state rpcs reach them through the shared handlers.
pub(crate) mod dapr_state {
    use layotto_core::state::{
        Concurrency, Consistency, DeleteRequest, SetRequest, StateOptions, TransactionOp,
    };
    use layotto_core::{Error, Result};
    use layotto_proto::dapr::proto::common::v1 as items;
    use layotto_proto::dapr::proto::runtime::v1 as ops;

    pub(crate) fn options(o: Option<items::StateOptions>) -> StateOptions {
        let Some(o) = o else {
            return StateOptions::default();
        };
        use items::state_options::{StateConcurrency as C, StateConsistency as S};
        StateOptions {
            concurrency: match C::try_from(o.concurrency) {
                Ok(C::ConcurrencyFirstWrite) => Concurrency::FirstWrite,
                Ok(C::ConcurrencyLastWrite) => Concurrency::LastWrite,
                _ => Concurrency::Unspecified,
            },
            consistency: match S::try_from(o.consistency) {
                Ok(S::ConsistencyEventual) => Consistency::Eventual,
                Ok(S::ConsistencyStrong) => Consistency::Strong,
                _ => Consistency::Unspecified,
            },
        }
    }

    pub(crate) fn etag(e: Option<items::Etag>) -> Option<String> {
        e.map(|e| e.value).filter(|v| !v.is_empty())
    }

    pub(crate) fn set_request(it: items::StateItem) -> SetRequest {
        SetRequest {
            key: it.key,
            value: it.value.into(),
            etag: etag(it.etag),
            metadata: it.metadata,
            options: options(it.options),
        }
    }

    pub(crate) fn delete_request(it: items::StateItem) -> DeleteRequest {
        DeleteRequest {
            key: it.key,
            etag: etag(it.etag),
            metadata: it.metadata,
            options: options(it.options),
        }
    }

    pub(crate) fn transaction(
        operations: Vec<ops::TransactionalStateOperation>,
    ) -> Result<Vec<TransactionOp>> {
        operations
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let item = op
                    .request
                    .ok_or_else(|| Error::invalid(format!("operations[{i}].request is empty")))?;
                match op.operation_type.to_ascii_lowercase().as_str() {
                    "upsert" => Ok(TransactionOp::Upsert(set_request(item))),
                    "delete" => Ok(TransactionOp::Delete(delete_request(item))),
                    other => Err(Error::invalid(format!(
                        "operations[{i}].operationType '{other}' is not supported (upsert, delete)"
                    ))),
                }
            })
            .collect()
    }
}

pub(crate) fn config_item(i: pb::ConfigurationItem) -> ConfigItem {
    ConfigItem {
        key: i.key,
        content: i.content,
        group: i.group,
        label: i.label,
        tags: i.tags,
        metadata: i.metadata,
    }
}

pub(crate) fn config_item_pb(i: ConfigItem) -> pb::ConfigurationItem {
    pb::ConfigurationItem {
        key: i.key,
        content: i.content,
        group: i.group,
        label: i.label,
        tags: i.tags,
        metadata: i.metadata,
    }
}

pub(crate) fn config_query(
    app_id: String,
    group: String,
    label: String,
    keys: Vec<String>,
    metadata: layotto_core::Metadata,
) -> ConfigQuery {
    ConfigQuery {
        app_id,
        group,
        label,
        keys,
        metadata,
    }
}

/// `$ty` (one API's `TopicEventRequest`) of the event `$ev`: the CloudEvent fields both APIs
/// share, then the API's own (`$($own)*`).
macro_rules! topic_event_request {
    ($ty:path, $ev:expr, { $($own:tt)* }) => {{
        let ev: &layotto_runtime::TopicEvent = $ev;
        $ty {
            id: ev.id.clone(),
            source: ev.source.clone(),
            r#type: ev.type_.clone(),
            spec_version: ev.spec_version.clone(),
            data_content_type: ev.data_content_type.clone(),
            data: ev.data.to_vec(),
            topic: ev.topic.clone(),
            pubsub_name: ev.pubsub_name.clone(),
            $($own)*
        }
    }};
}
pub(crate) use topic_event_request;

/// A delivered event in Layotto's `TopicEventRequest` shape.
pub(crate) fn topic_event(ev: &TopicEvent) -> pb::TopicEventRequest {
    topic_event_request!(pb::TopicEventRequest, ev, {
        metadata: ev.metadata.clone(),
    })
}

/// A JSON object as a protobuf `Struct` (numbers become doubles, as protojson reads them).
pub(crate) fn json_struct(m: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
    }
}

fn json_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_value).collect(),
        }),
        J::Object(m) => Kind::StructValue(json_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}
