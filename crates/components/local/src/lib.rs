//! Local components of layotto-rs: [`file_local`] (the `local` file store, files under one
//! root directory), [`secret_local`] (the `local.file` JSON file and `local.env`
//! environment secret stores, after Dapr's) and [`binding_cron`] (Dapr's `bindings.cron`
//! input binding).
//!
//! Factories only decode and validate metadata (typed, with
//! [`layotto_core::metadata::decode`]); files are read in each component's `init`.
//! [`register`] adds every type to a [`layotto_core::Registries`].

pub mod binding_cron;
pub mod file_local;
pub mod secret_local;

use std::sync::Arc;

use layotto_core::binding::OutputBinding;
use layotto_core::file::FileStore;
use layotto_core::secret::SecretStore;
use layotto_core::{MetadataKeys, Registries, Result};

pub use binding_cron::{CronBinding, CronMetadata};
pub use file_local::{LocalFileMetadata, LocalFileStore};
pub use secret_local::{
    LocalEnvSecretMetadata, LocalEnvSecretStore, LocalFileSecretMetadata, LocalFileSecretStore,
};

/// Registers the file store `local`, the secret stores `local.file` and `local.env` and the
/// binding `cron`.
///
/// # Errors
/// Invalid argument when one of these types is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn FileStore>(
        &[file_local::TYPE],
        MetadataKeys::of::<LocalFileMetadata>(),
        |s| Ok(Arc::new(LocalFileStore::from_spec(s)?) as Arc<dyn FileStore>),
    )?;
    r.register::<dyn SecretStore>(
        &[secret_local::FILE_TYPE],
        MetadataKeys::of::<LocalFileSecretMetadata>(),
        |s| Ok(Arc::new(LocalFileSecretStore::from_spec(s)?) as Arc<dyn SecretStore>),
    )?;
    r.register::<dyn SecretStore>(
        &[secret_local::ENV_TYPE],
        MetadataKeys::of::<LocalEnvSecretMetadata>(),
        |s| Ok(Arc::new(LocalEnvSecretStore::from_spec(s)?) as Arc<dyn SecretStore>),
    )?;
    r.register::<dyn OutputBinding>(
        &[binding_cron::TYPE],
        MetadataKeys::of::<CronMetadata>(),
        |s| Ok(Arc::new(CronBinding::from_spec(s)?) as Arc<dyn OutputBinding>),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Kind};

    use super::*;

    #[test]
    fn registers_every_type_without_io() {
        let mut r = Registries::new();
        register(&mut r).expect("no duplicates");
        assert_eq!(r.types(Kind::Secret), ["local.env", "local.file"]);
        assert_eq!(r.types(Kind::File), ["local"]);
        let with_prefix = |t: &str| ComponentSpec::new("c", t).with("keyPrefix", "appid");
        r.create::<dyn SecretStore>(&with_prefix("local.env"))
            .expect("env");
        r.create::<dyn SecretStore>(
            &with_prefix("local.file").with("secretsFile", "/does/not/matter"),
        )
        .expect("factory does no I/O");
        r.create::<dyn FileStore>(&with_prefix("local").with("root", "/does/not/exist/yet"))
            .expect("factory does no I/O");
        let e = r
            .create::<dyn FileStore>(&ComponentSpec::new("f", "s3"))
            .err()
            .expect("unknown type");
        assert!(e.message.contains("known types: local"), "{e}");
    }
}
