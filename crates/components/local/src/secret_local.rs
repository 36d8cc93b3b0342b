//! Local secret stores: a JSON file (`local.file`) and environment variables (`local.env`),
//! after Dapr's `secretstores.local.file` and `secretstores.local.env`.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use layotto_core::metadata::decode;
use layotto_core::secret::{Secret, SecretStore};
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Metadata, Result};
use serde_json::Value;
use tokio::sync::OnceCell;

/// Type string of [`LocalFileSecretStore`].
pub const FILE_TYPE: &str = "local.file";
/// Type string of [`LocalEnvSecretStore`].
pub const ENV_TYPE: &str = "local.env";
/// Metadata key of the JSON file path (required for `local.file`).
pub const SECRETS_FILE_KEY: &str = "secretsFile";
/// Metadata key of the separator joining nested JSON keys (default `":"`).
pub const NESTED_SEPARATOR_KEY: &str = "nestedSeparator";
/// Metadata key: `"true"` makes each top-level key one secret with several values.
pub const MULTI_VALUED_KEY: &str = "multiValued";
/// Metadata key of the environment variable prefix of `local.env` (optional).
pub const PREFIX_KEY: &str = "prefix";

/// Metadata of [`LocalFileSecretStore`] (Dapr's `secretstores.local.file` keys).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalFileSecretMetadata {
    /// `secretsFile`: path of the JSON file (required).
    pub secrets_file: Option<String>,
    /// `nestedSeparator`: joins nested JSON keys (default `":"`).
    pub nested_separator: Option<String>,
    /// `multiValued`: each top-level key is one secret with several values (default false).
    pub multi_valued: bool,
}

impl ComponentMetadata for LocalFileSecretMetadata {}

/// Metadata of [`LocalEnvSecretStore`] (Dapr's `secretstores.local.env` keys).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct LocalEnvSecretMetadata {
    /// `prefix`: only variables starting with it are visible, without it in secret names.
    pub prefix: Option<String>,
}

impl ComponentMetadata for LocalEnvSecretMetadata {}

/// Secrets read once from a JSON file (type `local.file`). For development.
///
/// Nested objects (and arrays, by index) are flattened, joining keys with `nestedSeparator`.
/// With `multiValued` false every flattened key is a secret `{key: value}`; with it true every
/// top-level key is a secret whose map holds its flattened nested keys (a top-level scalar
/// `k` becomes `{k: value}`). Non-string leaves are kept as their JSON text.
#[derive(Debug)]
pub struct LocalFileSecretStore {
    name: String,
    path: PathBuf,
    separator: String,
    multi_valued: bool,
    secrets: OnceCell<HashMap<String, Secret>>,
}

impl LocalFileSecretStore {
    /// Factory: [`LocalFileSecretMetadata`]. Does not read the file (that happens in `init`).
    ///
    /// # Errors
    /// Invalid argument when `secretsFile` is missing or `multiValued` is not a boolean.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: LocalFileSecretMetadata = decode(spec)?;
        let path = meta.secrets_file.ok_or_else(|| {
            Error::invalid(format!(
                "component '{}' (type '{FILE_TYPE}'): metadata '{SECRETS_FILE_KEY}' (path of a \
                 JSON file) is required",
                spec.name
            ))
        })?;
        Ok(Self {
            name: spec.name.clone(),
            path: PathBuf::from(path),
            separator: meta.nested_separator.unwrap_or_else(|| ":".to_owned()),
            multi_valued: meta.multi_valued,
            secrets: OnceCell::new(),
        })
    }

    async fn load(&self) -> Result<HashMap<String, Secret>> {
        // A relative path resolves against the working directory, as Layotto's does; the
        // error shows where that led.
        let shown = self.path.display();
        let tried = match std::env::current_dir() {
            Ok(cwd) if self.path.is_relative() => format!(
                "'{shown}' (relative to the working directory: '{}')",
                cwd.join(&self.path).display()
            ),
            _ => format!("'{shown}'"),
        };
        let raw = tokio::fs::read(&self.path).await.map_err(|e| {
            Error::invalid(format!(
                "secret store '{}': cannot read {SECRETS_FILE_KEY} {tried}: {e}",
                self.name
            ))
        })?;
        let doc: Value = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid(format!(
                "secret store '{}': {SECRETS_FILE_KEY} '{shown}' is not valid JSON: {e}",
                self.name
            ))
        })?;
        let Value::Object(top) = doc else {
            return Err(Error::invalid(format!(
                "secret store '{}': {SECRETS_FILE_KEY} '{shown}' must hold a JSON object",
                self.name
            )));
        };
        let mut secrets = HashMap::new();
        if self.multi_valued {
            for (k, v) in top {
                let mut values = HashMap::new();
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        flatten("", &v, &self.separator, &mut values);
                    }
                    scalar => {
                        values.insert(k.clone(), leaf_text(&scalar));
                    }
                }
                secrets.insert(k, values);
            }
        } else {
            let mut flat = HashMap::new();
            flatten("", &Value::Object(top), &self.separator, &mut flat);
            for (k, v) in flat {
                secrets.insert(k.clone(), HashMap::from([(k, v)]));
            }
        }
        Ok(secrets)
    }

    async fn secrets(&self) -> Result<&HashMap<String, Secret>> {
        self.secrets.get_or_try_init(|| self.load()).await
    }
}

/// JSON text of a scalar; strings without quotes.
fn leaf_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Flattens `v` into `out`, joining nested keys with `sep`.
fn flatten(prefix: &str, v: &Value, sep: &str, out: &mut HashMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}{sep}{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                flatten(&join(k), child, sep, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                flatten(&join(&i.to_string()), child, sep, out);
            }
        }
        scalar => {
            out.insert(prefix.to_owned(), leaf_text(scalar));
        }
    }
}

#[async_trait]
impl Component for LocalFileSecretStore {
    /// Reads and parses the file. Errors: invalid argument naming the file when it is missing,
    /// unreadable, not JSON or not a JSON object.
    async fn init(&self) -> Result<()> {
        self.secrets().await.map(|_| ())
    }
}

#[async_trait]
impl SecretStore for LocalFileSecretStore {
    /// The secret `key`. Errors: not found naming the key and the store; the init errors if
    /// the file was not loaded yet.
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Secret> {
        self.secrets().await?.get(key).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "secret '{key}' not found in secret store '{}'",
                self.name
            ))
        })
    }

    /// Every secret of the file. Errors: the init errors if the file was not loaded yet.
    async fn bulk_get(&self, _metadata: &Metadata) -> Result<HashMap<String, Secret>> {
        self.secrets().await.cloned()
    }
}

/// Secrets from the process environment (type `local.env`). For development.
///
/// With metadata `prefix`, only variables starting with it are visible and the prefix is left
/// out of secret names: secret `k` is variable `<prefix>k`. Each secret is `{name: value}`.
#[derive(Debug)]
pub struct LocalEnvSecretStore {
    name: String,
    prefix: String,
}

impl LocalEnvSecretStore {
    /// Factory: [`LocalEnvSecretMetadata`] (`prefix`, optional).
    ///
    /// # Errors
    /// None today; the signature matches every factory.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: LocalEnvSecretMetadata = decode(spec)?;
        Ok(Self {
            name: spec.name.clone(),
            prefix: meta.prefix.unwrap_or_default(),
        })
    }
}

impl Component for LocalEnvSecretStore {}

#[async_trait]
impl SecretStore for LocalEnvSecretStore {
    /// The variable `<prefix><key>` as `{key: value}`. Errors: invalid argument for an empty
    /// key or a value that is not UTF-8, not found naming the key and store when unset.
    async fn get(&self, key: &str, _metadata: &Metadata) -> Result<Secret> {
        if key.is_empty() {
            return Err(
                Error::empty_field("key").context(format_args!("secret store '{}'", self.name))
            );
        }
        let var = format!("{}{key}", self.prefix);
        match std::env::var(&var) {
            Ok(v) => Ok(HashMap::from([(key.to_owned(), v)])),
            Err(std::env::VarError::NotPresent) => Err(Error::not_found(format!(
                "secret '{key}' not found in secret store '{}' (environment variable '{var}' is \
                 not set)",
                self.name
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid(format!(
                "secret store '{}': environment variable '{var}' is not valid UTF-8",
                self.name
            ))),
        }
    }

    /// Every variable with the prefix (non-UTF-8 ones are skipped). Never fails.
    async fn bulk_get(&self, _metadata: &Metadata) -> Result<HashMap<String, Secret>> {
        Ok(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(&self.prefix)?;
                (!name.is_empty()).then(|| (name.to_owned(), HashMap::from([(name.to_owned(), v)])))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use layotto_core::ErrorKind;

    use super::*;

    const DOC: &str = r#"{
        "redisPassword": "pw",
        "port": 6379,
        "connectionStrings": {
            "sql": "s",
            "mysql": {"user": "u", "tls": true}
        },
        "hosts": ["h1", "h2"]
    }"#;

    fn file_store(doc: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, LocalFileSecretStore) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, doc).expect("write");
        let mut spec =
            ComponentSpec::new("sec", FILE_TYPE).with(SECRETS_FILE_KEY, path.display().to_string());
        for (k, v) in extra {
            spec = spec.with(*k, *v);
        }
        (dir, LocalFileSecretStore::from_spec(&spec).expect("spec"))
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn flattened_single_values() {
        let (_d, s) = file_store(DOC, &[]);
        s.init().await.expect("init");
        let md = Metadata::new();
        assert_eq!(
            s.get("redisPassword", &md).await.expect("get"),
            secret(&[("redisPassword", "pw")])
        );
        assert_eq!(
            s.get("port", &md).await.expect("get"),
            secret(&[("port", "6379")])
        );
        assert_eq!(
            s.get("connectionStrings:mysql:tls", &md)
                .await
                .expect("get"),
            secret(&[("connectionStrings:mysql:tls", "true")])
        );
        assert_eq!(
            s.get("hosts:1", &md).await.expect("get"),
            secret(&[("hosts:1", "h2")])
        );
        let e = s
            .get("connectionStrings", &md)
            .await
            .expect_err("not a leaf");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(
            e.message.contains("connectionStrings") && e.message.contains("sec"),
            "{e}"
        );
        assert_eq!(s.bulk_get(&md).await.expect("bulk").len(), 7);
    }

    #[tokio::test]
    async fn multi_valued_and_custom_separator() {
        let (_d, s) = file_store(
            DOC,
            &[(MULTI_VALUED_KEY, "true"), (NESTED_SEPARATOR_KEY, ".")],
        );
        let md = Metadata::new();
        assert_eq!(
            s.get("connectionStrings", &md).await.expect("get"),
            secret(&[("sql", "s"), ("mysql.user", "u"), ("mysql.tls", "true")])
        );
        assert_eq!(
            s.get("redisPassword", &md).await.expect("get"),
            secret(&[("redisPassword", "pw")])
        );
        assert_eq!(
            s.get("hosts", &md).await.expect("get"),
            secret(&[("0", "h1"), ("1", "h2")])
        );
        assert_eq!(s.bulk_get(&md).await.expect("bulk").len(), 4);
    }

    #[tokio::test]
    async fn bad_files_fail_at_init_naming_the_file() {
        let (_d, s) = file_store("{not json", &[]);
        let e = s.init().await.expect_err("bad json");
        assert!(
            e.message.contains("secrets.json") && e.message.contains("JSON"),
            "{e}"
        );
        let (_d, s) = file_store("[1]", &[]);
        assert!(s.init().await.is_err());
        let spec =
            ComponentSpec::new("sec", FILE_TYPE).with(SECRETS_FILE_KEY, "/nonexistent/x.json");
        let e = LocalFileSecretStore::from_spec(&spec)
            .expect("factory does no I/O")
            .init()
            .await
            .expect_err("missing file");
        assert!(e.message.contains("/nonexistent/x.json"), "{e}");
        let e = LocalFileSecretStore::from_spec(&ComponentSpec::new("sec", FILE_TYPE))
            .expect_err("required");
        assert!(e.message.contains(SECRETS_FILE_KEY), "{e}");
        let (_d, _) = file_store(DOC, &[]);
        let spec = ComponentSpec::new("sec", FILE_TYPE)
            .with(SECRETS_FILE_KEY, "x")
            .with(MULTI_VALUED_KEY, "maybe");
        let e = LocalFileSecretStore::from_spec(&spec).expect_err("bad bool");
        assert!(e.message.contains(MULTI_VALUED_KEY), "{e}");
    }

    #[tokio::test]
    async fn env_with_prefix() {
        // PATH is set in every test environment; no test mutates the environment.
        let path = std::env::var("PATH").expect("PATH is set");
        let md = Metadata::new();
        let s = LocalEnvSecretStore::from_spec(
            &ComponentSpec::new("env", ENV_TYPE).with(PREFIX_KEY, "PA"),
        )
        .expect("spec");
        assert_eq!(
            s.get("TH", &md).await.expect("get"),
            secret(&[("TH", &path)])
        );
        let e = s
            .get("TH_NOT_SET_ANYWHERE_42", &md)
            .await
            .expect_err("unset");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("TH_NOT_SET_ANYWHERE_42"), "{e}");
        let all = s.bulk_get(&md).await.expect("bulk");
        assert_eq!(all.get("TH"), Some(&secret(&[("TH", &path)])));
        assert!(all.keys().all(|k| std::env::var(format!("PA{k}")).is_ok()));
        let plain =
            LocalEnvSecretStore::from_spec(&ComponentSpec::new("env", ENV_TYPE)).expect("spec");
        assert_eq!(
            plain.get("PATH", &md).await.expect("get"),
            secret(&[("PATH", &path)])
        );
    }
}
