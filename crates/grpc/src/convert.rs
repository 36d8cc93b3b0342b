//! Proto <-> domain conversions.

use layotto_core::configuration::{ConfigItem, ConfigQuery};
use layotto_proto::runtime as pb;
use layotto_runtime::TopicEvent;

/// State request conversions for one generated API: Layotto's and Dapr's state messages have
/// the same names and fields (`StateItem`, `Etag`, `StateOptions`, `TransactionalStateOperation`)
/// in different packages, so one body serves both. `$items` is the package of the items and
/// options, `$ops` the one of `TransactionalStateOperation`.
macro_rules! state_conversions {
    ($($items:ident)::+, $($ops:ident)::+) => {
        use layotto_core::state::{
            Concurrency, Consistency, DeleteRequest, SetRequest, StateOptions, TransactionOp,
        };
        use layotto_core::{Error, Result};
        use $($items)::+ as items;
        use $($ops)::+ as ops;

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
                    let item = op.request.ok_or_else(|| {
                        Error::invalid(format!("operations[{i}].request is empty"))
                    })?;
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
    };
}

/// Layotto's state messages (`spec.proto.runtime.v1`).
pub(crate) mod layotto_state {
    state_conversions!(layotto_proto::runtime, layotto_proto::runtime);
}

/// Dapr's state messages (`dapr.proto.common.v1` items, `dapr.proto.runtime.v1` operations).
pub(crate) mod dapr_state {
    state_conversions!(
        layotto_proto::dapr::proto::common::v1,
        layotto_proto::dapr::proto::runtime::v1
    );
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
        metadata: ev.metadata.clone(),
    }
}
