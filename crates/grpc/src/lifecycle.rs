//! `spec.proto.runtime.v1.Lifecycle`.

use std::sync::Arc;

use layotto_proto::runtime::lifecycle_server::Lifecycle;
use layotto_proto::runtime::{ApplyConfigurationResponse, DynamicConfiguration};
use layotto_runtime::Runtime;
use tonic::{Request, Response, Status};

use crate::status::IntoStatus;

/// Serves `ApplyConfiguration`.
pub struct LifecycleService {
    rt: Arc<Runtime>,
}

impl LifecycleService {
    /// A service over `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[tonic::async_trait]
impl Lifecycle for LifecycleService {
    async fn apply_configuration(
        &self,
        req: Request<DynamicConfiguration>,
    ) -> Result<Response<ApplyConfigurationResponse>, Status> {
        let cfg = req
            .into_inner()
            .component_config
            .ok_or_else(|| Status::invalid_argument("component_config is empty"))?;
        self.rt
            .apply_configuration(&cfg.kind, &cfg.name, &cfg.metadata)
            .status()?;
        Ok(Response::new(ApplyConfigurationResponse {}))
    }
}
