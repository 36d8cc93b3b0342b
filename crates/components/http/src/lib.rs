//! The `http` output binding of layotto-rs (Dapr's `bindings.http`), in [`binding_http`].
//!
//! The factory only decodes and validates metadata (typed, with
//! [`layotto_core::metadata::decode`]); the HTTP client is built in `init`. [`register`] adds
//! the type to a [`layotto_core::Registries`].

pub mod binding_http;

use std::sync::Arc;

use layotto_core::binding::OutputBinding;
use layotto_core::{MetadataKeys, Registries, Result};

pub use binding_http::{HttpBinding, HttpBindingMetadata};

/// Registers the output binding `http`.
///
/// # Errors
/// Invalid argument when the type is already registered.
pub fn register(r: &mut Registries) -> Result<()> {
    r.register::<dyn OutputBinding>(
        &[binding_http::TYPE],
        MetadataKeys::of::<HttpBindingMetadata>(),
        |s| Ok(Arc::new(HttpBinding::from_spec(s)?) as Arc<dyn OutputBinding>),
    )
}

#[cfg(test)]
mod tests {
    use layotto_core::{ComponentSpec, Kind};

    use super::*;

    #[test]
    fn registers_http() {
        let mut r = Registries::new();
        register(&mut r).expect("registered once");
        assert_eq!(r.types(Kind::Binding), ["http"]);
        r.create::<dyn OutputBinding>(
            &ComponentSpec::new("c", "http")
                .with("keyPrefix", "appid")
                .with("url", "http://localhost:1"),
        )
        .expect("http");
    }
}
