//! The preambles of the Dapr routes as axum extractors, each rejecting with the Dapr error
//! answer ([`ApiError`]) Dapr gives when that part of the request is wrong:
//!
//! - [`Named`] (as [`StateStore`], [`PubSub`], [`ConfigStore`]) and [`Topic`]: the component
//!   the route names, checked to exist before anything else of the request is read, as Dapr
//!   does;
//! - [`Params`]: the query string (400 `ERR_MALFORMED_REQUEST`), with the
//!   `metadata.<key>` helpers;
//! - [`RawBody`]: the body bytes (`ERR_BODY_READ`; 413 over the size limit);
//! - [`JsonBody`]: the body decoded as JSON (400 `ERR_MALFORMED_REQUEST`).
//!
//! Axum runs extractors in argument order, so a handler taking
//! `(State, StateStore, Params, JsonBody<T>)` checks the store, then the query, then the body.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use layotto_config::Kind;
use layotto_core::{Error, Metadata};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ERR_MALFORMED_REQUEST, Op, map_error};
use super::{Ctx, METADATA_PREFIX};

/// Query parameters in order.
pub(crate) struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(p)| Self(p))
            .map_err(|r| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ERR_MALFORMED_REQUEST,
                    format!("invalid query string: {}", r.body_text()),
                )
            })
    }
}

impl Params {
    /// Metadata from `metadata.<key>=<value>` parameters; the first value of a key wins, as
    /// with Go's `url.Values` (`http.go` `getMetadataFromRequest`).
    pub(crate) fn metadata(&self) -> Metadata {
        let mut md = Metadata::new();
        for (k, v) in &self.0 {
            if let Some(key) = k.strip_prefix(METADATA_PREFIX) {
                md.entry(key.to_owned()).or_insert_with(|| v.clone());
            }
        }
        md
    }

    /// The first value of parameter `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of parameter `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The request body.
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|r| ApiError::body(&r))
    }
}

/// The request body decoded as JSON.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(body) = RawBody::from_request(req, state).await?;
        serde_json::from_slice(&body)
            .map(Self)
            .map_err(ApiError::malformed)
    }
}

/// A building block whose component a route names.
pub(crate) trait Block: Send + Sync {
    /// The block.
    const KIND: Kind;
    /// The route parameter holding the component name.
    const PARAM: &'static str;
    /// An operation of the block on component `name`, for the not-configured / not-found
    /// answers (the same for every operation of a block).
    fn op(name: &str) -> Op<'_>;
}

/// The state store of `/v1.0/state/{store}/...`.
pub(crate) struct StateBlock;
/// The pub/sub of `/v1.0/publish/{pubsub}/...`.
pub(crate) struct PubSubBlock;
/// The configuration store of `/v1.0/configuration/{store}/...`.
pub(crate) struct ConfigBlock;

impl Block for StateBlock {
    const KIND: Kind = Kind::State;
    const PARAM: &'static str = "store";
    fn op(name: &str) -> Op<'_> {
        Op::StateSave { store: name }
    }
}

impl Block for PubSubBlock {
    const KIND: Kind = Kind::PubSub;
    const PARAM: &'static str = "pubsub";
    fn op(name: &str) -> Op<'_> {
        Op::Publish {
            pubsub: name,
            topic: "",
        }
    }
}

impl Block for ConfigBlock {
    const KIND: Kind = Kind::Configuration;
    const PARAM: &'static str = "store";
    fn op(name: &str) -> Op<'_> {
        Op::ConfigGet {
            store: name,
            keys: &[],
        }
    }
}

/// The component of block `B` the route names, known to exist.
pub(crate) struct Named<B>(pub String, pub PhantomData<B>);

/// A state store named by the route.
pub(crate) type StateStore = Named<StateBlock>;
/// A pub/sub named by the route.
pub(crate) type PubSub = Named<PubSubBlock>;
/// A configuration store named by the route.
pub(crate) type ConfigStore = Named<ConfigBlock>;

impl<B: Block> FromRequestParts<Ctx> for Named<B> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, ctx)
            .await
            .map_err(|r| ApiError::new(r.status(), ERR_MALFORMED_REQUEST, r.body_text()))?;
        let name = params
            .iter()
            .find(|(k, _)| *k == B::PARAM)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        check(ctx, B::KIND, &name).map_err(|e| map_error(&e, B::op(&name)))?;
        Ok(Self(name, PhantomData))
    }
}

/// The pub/sub and topic of `/v1.0[-alpha1]/publish[/bulk]/{pubsub}/{topic...}`, the pub/sub
/// known to exist.
pub(crate) struct Topic {
    /// The pub/sub.
    pub pubsub: String,
    /// The topic (may contain `/`).
    pub topic: String,
}

impl Topic {
    /// The publish operation, for errors.
    pub(crate) fn op(&self) -> Op<'_> {
        Op::Publish {
            pubsub: &self.pubsub,
            topic: &self.topic,
        }
    }
}

impl FromRequestParts<Ctx> for Topic {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let Named(pubsub, _) = PubSub::from_request_parts(parts, ctx).await?;
        let Path((_, topic)) = Path::<(String, String)>::from_request_parts(parts, ctx)
            .await
            .map_err(|r| ApiError::new(r.status(), ERR_MALFORMED_REQUEST, r.body_text()))?;
        Ok(Self { pubsub, topic })
    }
}

/// Checks that component `name` of `kind` exists, with the errors the runtime gives (nothing
/// of the block configured, empty or unknown name).
pub(crate) fn check(ctx: &Ctx, kind: Kind, name: &str) -> Result<(), Error> {
    let api = kind.api();
    match ctx.rt.has_component(kind, name) {
        Some(true) => Ok(()),
        None => Err(Error::not_configured(api)),
        Some(false) if name.is_empty() => Err(Error::empty_field(&format!("{api} store name"))),
        Some(false) => Err(Error::store_not_found(api, name)),
    }
}
