//! The `helloworld` hello component (Layotto's `components/hello/helloworld`).

use std::sync::RwLock;

use layotto_core::hello::Hello;
use layotto_core::metadata::decode;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Metadata, Result};

/// Type string of [`HelloWorld`].
pub const TYPE: &str = "helloworld";
/// Metadata key of the greeting, both in the component spec and in `apply_config`.
pub const HELLO_KEY: &str = "hello";
/// Greeting used when metadata `hello` is absent.
pub const DEFAULT_GREETING: &str = "greeting";

/// Metadata of [`HelloWorld`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct HelloMetadata {
    /// `hello`: the greeting (default [`DEFAULT_GREETING`]).
    pub hello: Option<String>,
}

impl ComponentMetadata for HelloMetadata {}

/// Says the configured greeting; the greeting can be replaced at run time.
#[derive(Debug)]
pub struct HelloWorld {
    name: String,
    greeting: RwLock<String>,
}

impl HelloWorld {
    /// A hello component named `name` saying `greeting`.
    pub fn new(name: impl Into<String>, greeting: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            greeting: RwLock::new(greeting.into()),
        }
    }

    /// Factory: [`HelloMetadata`] (`hello`, the greeting, default `"greeting"`).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: HelloMetadata = decode(spec)?;
        Ok(Self::new(
            spec.name.clone(),
            meta.hello.as_deref().unwrap_or(DEFAULT_GREETING),
        ))
    }
}

impl Component for HelloWorld {}

#[async_trait::async_trait]
impl Hello for HelloWorld {
    /// The greeting, followed by `", <name>"` when `name` is not empty. Never fails.
    async fn say_hello(&self, name: &str) -> Result<String> {
        let greeting = self
            .greeting
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(if name.is_empty() {
            greeting.clone()
        } else {
            format!("{greeting}, {name}")
        })
    }

    /// Metadata `hello` replaces the greeting. Errors: invalid argument naming any other key
    /// (nothing is changed then).
    fn apply_config(&self, metadata: &Metadata) -> Result<()> {
        let mut unknown: Vec<&str> = metadata
            .keys()
            .map(String::as_str)
            .filter(|k| *k != HELLO_KEY)
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(Error::invalid(format!(
                "hello '{}': unknown configuration key(s) {}; known keys: {HELLO_KEY}",
                self.name,
                unknown.join(", ")
            )));
        }
        if let Some(g) = metadata.get(HELLO_KEY) {
            *self
                .greeting
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = g.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn greets_and_reconfigures() {
        let h = HelloWorld::from_spec(&ComponentSpec::new("h", TYPE)).expect("spec");
        assert_eq!(h.say_hello("").await.expect("hello"), "greeting");
        assert_eq!(
            h.say_hello("layotto").await.expect("hello"),
            "greeting, layotto"
        );
        let h = HelloWorld::from_spec(&ComponentSpec::new("h", TYPE).with(HELLO_KEY, "hi"))
            .expect("spec");
        assert_eq!(h.say_hello("you").await.expect("hello"), "hi, you");
        let mut m = Metadata::new();
        m.insert(HELLO_KEY.into(), "hey".into());
        h.apply_config(&m).expect("apply");
        assert_eq!(h.say_hello("").await.expect("hello"), "hey");
        m.insert("bogus".into(), "1".into());
        let e = h.apply_config(&m).expect_err("unknown key");
        assert!(e.message.contains("bogus"), "{e}");
        assert_eq!(h.say_hello("").await.expect("hello"), "hey");
        // An unknown component key is ignored, with a warning.
        let spec = ComponentSpec::new("h", TYPE).with("x", "1");
        HelloWorld::from_spec(&spec).expect("unknown keys are ignored");
        let w = layotto_core::MetadataKeys::of::<HelloMetadata>().warnings_with(
            &spec.metadata,
            layotto_core::Kind::Hello.info().runtime_keys,
        );
        assert!(w.len() == 1 && w[0].contains("'x'"), "{w:?}");
    }
}
