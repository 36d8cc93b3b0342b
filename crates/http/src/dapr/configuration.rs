//! Configuration (`dapr/dapr:pkg/api/http/http.go` `onGetConfiguration`,
//! `onSubscribeConfiguration`, `onUnsubscribeConfiguration`, `configurationEventHandler`;
//! docs.dapr.io "Configuration API reference"). Served under `/v1.0` and `/v1.0-alpha1`.
//!
//! - `GET .../configuration/{store}?key=a&key=b` (no key: all): 200
//!   `{"a": {"value": "..", "version": "..", "metadata": {..}}}` (components-contrib
//!   `configuration.Item`, empty fields left out); 204 when nothing matches.
//! - `GET .../configuration/{store}/subscribe?key=a`: 200 `{"id": "<uuid>"}`. Every change
//!   batch is POSTed to the app, once per changed key, at `/configuration/{store}/{key}` with
//!   `Content-Type: application/json` and the body `{"id": "<uuid>", "items": {"<key>": Item}}`
//!   (`configuration.UpdateEvent`). Needs an app: without one, 500 `ERR_APP_CHANNEL_NIL`.
//! - `GET .../configuration/{store}/{id}/unsubscribe`: 200 `{"ok": true}`; an unknown id is
//!   500 `{"message": "failed to unsubscribe to configuration request <id>: ..."}` (Dapr's
//!   `UnsubscribeConfigurationResponse` with `ok` false, hence left out).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use layotto_core::configuration::{ConfigChanges, ConfigItem, ConfigQuery};
use layotto_runtime::{InvokeRequest, Runtime};
use serde::Serialize;

use super::error::{ApiError, Op, err};
use super::extract::{ConfigStore, Named, Params};
use super::{Ctx, json_ok, json_response, no_content};

/// A live subscription: the task forwarding its changes to the app.
pub(crate) struct Subscription {
    store: String,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// components-contrib `configuration.Item`.
#[derive(Debug, Serialize)]
struct ItemOut {
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
}

fn items_out(items: Vec<ConfigItem>) -> BTreeMap<String, ItemOut> {
    items
        .into_iter()
        .map(|i| {
            (
                i.key,
                ItemOut {
                    value: i.content,
                    // As the gRPC API: a store's item version travels in its `version` metadata.
                    version: i.metadata.get("version").cloned().unwrap_or_default(),
                    metadata: i.metadata.into_iter().collect(),
                },
            )
        })
        .collect()
}

/// The query of `?key=a&key=b&metadata.x=y` (no key: all).
fn query(params: &Params) -> ConfigQuery {
    ConfigQuery {
        keys: params.all("key"),
        metadata: params.metadata(),
        ..Default::default()
    }
}

/// `GET /v1.0[-alpha1]/configuration/{store}`.
pub(crate) async fn get(
    State(ctx): State<Ctx>,
    Path(store): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let q = query(&params);
    let op = Op::ConfigGet {
        store: &store,
        keys: &q.keys,
    };
    let items = ctx
        .rt
        .get_configuration(&store, q.clone())
        .await
        .map_err(err(op))?;
    Ok(if items.is_empty() {
        no_content()
    } else {
        json_ok(&items_out(items))
    })
}

#[derive(Serialize)]
struct UpdateEvent<'a> {
    id: &'a str,
    items: BTreeMap<String, ItemOut>,
}

/// Forwards change batches to the app until the subscription is dropped or aborted.
async fn forward(rt: Arc<Runtime>, store: String, id: String, mut changes: ConfigChanges) {
    while let Some(batch) = changes.recv().await {
        let keys: Vec<String> = batch.iter().map(|i| i.key.clone()).collect();
        let event = UpdateEvent {
            id: &id,
            items: items_out(batch),
        };
        let data = match serde_json::to_vec(&event) {
            Ok(d) => bytes::Bytes::from(d),
            Err(e) => {
                tracing::error!(error = %e, "encoding a configuration update");
                continue;
            }
        };
        for key in keys {
            let req = InvokeRequest {
                method: format!("configuration/{store}/{key}"),
                http_verb: "POST".to_owned(),
                content_type: "application/json".to_owned(),
                data: data.clone().into(),
                ..Default::default()
            };
            match rt.invoke_service(rt.app_id(), &req).await {
                Ok(resp) if resp.status == 200 => {}
                Ok(resp) => tracing::error!(
                    status = resp.status, store = %store, key = %key,
                    "error sending configuration item to application"
                ),
                Err(e) => tracing::error!(
                    error = %e, store = %store, key = %key,
                    "error sending configuration item to the app"
                ),
            }
        }
    }
}

/// `GET /v1.0[-alpha1]/configuration/{store}/subscribe`.
pub(crate) async fn subscribe(
    State(ctx): State<Ctx>,
    params: Params,
    Named(store, _): ConfigStore,
) -> Result<Response, ApiError> {
    let q = query(&params);
    let op = Op::ConfigSubscribe {
        store: &store,
        keys: &q.keys,
    };
    if ctx.shared.app.is_none() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_APP_CHANNEL_NIL",
            "app channel is not initialized. cannot subscribe to configuration updates",
        ));
    }
    let changes = ctx
        .rt
        .subscribe_configuration(&store, q.clone())
        .await
        .map_err(err(op))?;
    let id = uuid::Uuid::new_v4().to_string();
    let task = tokio::spawn(forward(ctx.rt.clone(), store.clone(), id.clone(), changes));
    ctx.config_subs()
        .insert(id.clone(), Subscription { store, task });
    Ok(json_ok(&serde_json::json!({ "id": id })))
}

/// `GET /v1.0[-alpha1]/configuration/{store}/{id}/unsubscribe`.
pub(crate) async fn unsubscribe(
    State(ctx): State<Ctx>,
    Named(store, _): ConfigStore,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let removed = {
        let mut subs = ctx.config_subs();
        match subs.get(&id) {
            Some(s) if s.store == store => subs.remove(&id),
            _ => None,
        }
    };
    match removed {
        Some(sub) => {
            sub.task.abort();
            json_ok(&serde_json::json!({ "ok": true }))
        }
        None => {
            let msg = format!(
                "failed to unsubscribe to configuration request {id}: subscription {id} not found \
                 in configuration store {store}"
            );
            let body =
                serde_json::to_vec(&serde_json::json!({ "message": msg })).unwrap_or_default();
            json_response(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}
