//! From a loaded configuration to built components: placeholders, secret references, key
//! layouts, metadata warnings. No I/O except reading secret stores for `secretKeyRef`.

use std::collections::HashMap;
use std::sync::Arc;

use layotto_config::{ComponentEntry, Config, Kind, Origin, Problem, Problems};
use layotto_core::metadata::substitute_placeholders;
use layotto_core::pubsub::CONSUMER_ID_KEY;
use layotto_core::secret::SecretStore;
use layotto_core::sequencer::{BIGGER_THAN_KEY, parse_bigger_than};
use layotto_core::{ComponentSpec, Error, Metadata, Registries, Result};

use layotto_core::binding::OutputBinding;
use layotto_core::sequencer::Sequencer;

use crate::RegisteredComponent;
use crate::call::Entry;
use crate::input_bindings::BindingRoute;
use crate::keys::KeyPrefix;
use crate::segments::SegmentCache;

/// The value `validate` gives metadata a secret store supplies at start-up.
const SECRET_STAND_IN: &str = "<from secret store>";

/// Checks every component of `config` against `registries` without I/O, collecting all
/// problems (unknown types, bad metadata, bad key prefixes).
///
/// # Returns
/// The warnings (unknown metadata keys, keys accepted without effect), each at its component.
///
/// # Errors
/// Every problem found, each with file and JSON path.
pub fn validate(
    config: &Config,
    registries: &Registries,
) -> std::result::Result<Vec<Problem>, Problems> {
    let app_id = &config.app.app_id;
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    for entry in &config.components {
        let (ref_problems, ref_warnings) = check_refs(config, entry);
        problems.extend(ref_problems.into_iter().map(|m| at_one(entry, m)));
        warnings.extend(at(entry, ref_warnings));
        // A value a secret store supplies is known only at start-up: here it is taken as
        // given, so the component's own checks of the other keys still run.
        let mut with_secrets = entry.clone();
        for r in &entry.secret_refs {
            with_secrets
                .spec
                .metadata
                .entry(r.metadata_key.clone())
                .or_insert_with(|| SECRET_STAND_IN.to_owned());
        }
        match create(registries, &with_secrets, app_id) {
            Ok((_, w)) => warnings.extend(at(entry, w)),
            // The stand-in value may fail a format check the real secret passes.
            Err(e)
                if e.message.contains(SECRET_STAND_IN)
                    || entry
                        .secret_refs
                        .iter()
                        .any(|r| e.message.contains(&r.metadata_key)) =>
            {
                warnings.extend(at(
                    entry,
                    vec![format!(
                        "not fully checked: some metadata comes from a secret store ({})",
                        e.message
                    )],
                ));
            }
            Err(e) => problems.push(at_one(entry, e.message)),
        }
    }
    crate::subscriptions::declared(&config.subscriptions, &mut problems);
    for s in &config.subscriptions {
        if !config
            .of_kind(layotto_config::Kind::PubSub)
            .any(|c| c.spec.name == s.pubsub_name)
        {
            warnings.push(Problem {
                file: s.file.clone(),
                path: format!("Subscription '{}'.spec.pubsubname", s.name),
                message: format!(
                    "pub/sub '{}' is not configured: the subscription will not receive events",
                    s.pubsub_name
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(Problems(problems))
    }
}

fn at_one(entry: &ComponentEntry, message: String) -> Problem {
    Problem {
        file: entry.file.clone(),
        path: entry.path.clone(),
        message,
    }
}

/// `messages` as warnings at component `entry`, each naming it.
pub(crate) fn at(
    entry: &ComponentEntry,
    messages: Vec<String>,
) -> impl Iterator<Item = Problem> + '_ {
    messages.into_iter().map(|m| {
        at_one(
            entry,
            format!("{} component '{}': {m}", entry.kind, entry.spec.name),
        )
    })
}

/// Builds the component of `entry`: substitutes Dapr's metadata placeholders (for Dapr
/// resources), resolves its key layout and builds it from its block's registry, with what the metadata
/// API lists of it (capabilities) and its WEAK id segments or binding route. Returns the
/// table entry and the metadata warnings.
pub(crate) fn create(
    r: &Registries,
    entry: &ComponentEntry,
    app_id: &str,
) -> Result<(Entry, Vec<String>)> {
    let mut spec = entry.spec.clone();
    if entry.origin == Origin::Dapr {
        substitute(&mut spec.metadata, app_id)?;
        // daprd gives a pub/sub without `consumerID` the app id before its init (MQTT's
        // client id, Kafka's group).
        if entry.kind == Kind::PubSub && spec.get_ci(CONSUMER_ID_KEY).is_none() {
            spec.metadata
                .insert(CONSUMER_ID_KEY.to_owned(), app_id.to_owned());
        }
    }
    let keys = KeyPrefix::for_component(entry.kind, entry.origin, &spec, app_id)?;
    if entry.kind == Kind::Sequencer {
        spec = stored_floors(&spec, &keys)?;
    }
    let mut built = r.create_any(entry.kind, &spec)?;
    let warnings = std::mem::take(&mut built.warnings);
    let consumer_id = (entry.kind == Kind::PubSub)
        .then(|| spec.get_ci(CONSUMER_ID_KEY).map(|(_, v)| v.to_owned()))
        .flatten();
    let name = &entry.spec.name;
    let mut capabilities: Vec<String> = built
        .component
        .features()
        .iter()
        .map(|f| f.as_str().to_owned())
        .chain(
            entry
                .kind
                .info()
                .implied_capabilities
                .iter()
                .map(|c| (*c).to_owned()),
        )
        .collect();
    let mut route = None;
    if let Some(b) = built.get::<dyn OutputBinding>() {
        let r = BindingRoute::of(name, &entry.spec.metadata);
        if r.output && !b.operations().is_empty() {
            capabilities.push("OUTPUT_BINDING".to_owned());
        }
        if r.input && b.clone().input().is_some() {
            capabilities.push("INPUT_BINDING".to_owned());
        }
        route = Some(r);
    }
    capabilities.sort();
    capabilities.dedup();
    let segments = built
        .get::<dyn Sequencer>()
        .map(|seq| SegmentCache::new(seq.clone(), crate::segments::DEFAULT_SEGMENT_SIZE));
    Ok((
        Entry {
            built,
            keys,
            consumer_id,
            policies: crate::call::ComponentPolicies::default(),
            registered: RegisteredComponent {
                name: name.clone(),
                kind: entry.kind,
                type_: entry.spec.type_.clone(),
                capabilities,
            },
            segments,
            route,
            source: entry.clone(),
        },
        warnings,
    ))
}

/// Substitutes `{uuid}`, `{podName}`, `{namespace}` and `{appID}` in every value of `metadata`.
fn substitute(metadata: &mut Metadata, app_id: &str) -> Result<()> {
    let mut uuid = || uuid::Uuid::new_v4().to_string();
    for (k, v) in metadata.iter_mut() {
        *v = substitute_placeholders(k, v, app_id, &mut uuid)?;
    }
    Ok(())
}

/// `spec` with its `biggerThan` floors keyed by stored (prefixed) keys, as the component sees
/// keys in requests.
fn stored_floors(spec: &ComponentSpec, keys: &KeyPrefix) -> Result<ComponentSpec> {
    let Some((written, raw)) = spec.get_ci(BIGGER_THAN_KEY) else {
        return Ok(spec.clone());
    };
    let floors = parse_bigger_than(Some(raw))
        .map_err(|e| e.context(format!("component '{}'", spec.name)))?;
    if floors.is_empty() {
        return Ok(spec.clone());
    }
    let written = written.to_owned();
    let stored = floors
        .into_iter()
        .map(|(k, v)| Ok((keys.apply(&k, BIGGER_THAN_KEY)?, v)))
        .collect::<Result<HashMap<_, _>>>()?;
    let text = serde_json::to_string(&stored)
        .map_err(|e| Error::internal(format!("encoding {BIGGER_THAN_KEY}: {e}")))?;
    let mut spec = spec.clone();
    spec.metadata.insert(written, text);
    Ok(spec)
}

/// Resolves the secret references of every component of `config` (Dapr `secretKeyRef`,
/// read from the component's `auth.secretStore`; Layotto `secret_ref`, each from its
/// `store_name`): each secret store is built and initialised here, before the runtime, and
/// each value written into the component's metadata.
///
/// # Errors
/// Every reference that cannot be resolved, each naming the component, the metadata key, the
/// store and the secret: no store named, an unknown or failing store, a missing secret or key.
pub async fn resolve_secret_refs(
    config: &mut Config,
    registries: &Registries,
) -> std::result::Result<(), Problems> {
    let mut stores: HashMap<String, Arc<dyn SecretStore>> = HashMap::new();
    let mut problems = Vec::new();
    for i in 0..config.components.len() {
        let entry = &config.components[i];
        let mut resolved = Vec::new();
        for r in &entry.secret_refs {
            let problem = |message: String| at_one(entry, message);
            let Some(store_name) = r.store.clone().or_else(|| entry.secret_store.clone()) else {
                problems.push(problem(format!(
                    "metadata '{}' uses secretKeyRef but the component names no secret store \
                     (auth.secretStore)",
                    r.metadata_key
                )));
                continue;
            };
            let store =
                match cached_secret_store(&mut stores, config, registries, &store_name).await {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push(problem(format!("metadata '{}': {e}", r.metadata_key)));
                        continue;
                    }
                };
            match store.get(&r.secret_name, &Metadata::new()).await {
                Ok(secret) => match secret.get(&r.secret_key) {
                    Some(v) => resolved.push((r.metadata_key.clone(), v.clone())),
                    None => problems.push(problem(format!(
                        "metadata '{}': secret '{}' of store '{store_name}' has no key '{}'",
                        r.metadata_key, r.secret_name, r.secret_key
                    ))),
                },
                Err(e) => problems.push(problem(format!(
                    "metadata '{}': secret '{}' of store '{store_name}': {e}",
                    r.metadata_key, r.secret_name
                ))),
            }
        }
        config.components[i].spec.metadata.extend(resolved);
    }
    resolve_endpoint_secrets(config, registries, &mut stores, &mut problems).await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems(problems))
    }
}

/// Fills the `secretKeyRef` header values and TLS documents of the `HTTPEndpoint` resources
/// from their `auth.secretStore`.
async fn resolve_endpoint_secrets(
    config: &mut Config,
    registries: &Registries,
    stores: &mut HashMap<String, Arc<dyn SecretStore>>,
    problems: &mut Vec<layotto_config::Problem>,
) {
    use layotto_config::http_endpoint::EndpointValue;
    let mut endpoints = std::mem::take(&mut config.http_endpoints);
    for e in &mut endpoints {
        let (name, file, store_name) = (e.name.clone(), e.file.clone(), e.secret_store.clone());
        for (at, v) in e.values_mut() {
            let EndpointValue::Secret { name: secret, key } = v else {
                continue;
            };
            let problem = |message: String| layotto_config::Problem {
                file: file.clone(),
                path: format!("HTTPEndpoint '{name}'"),
                message: format!("{at}: {message}"),
            };
            let Some(store_name) = store_name.clone() else {
                problems.push(problem("secretKeyRef needs auth.secretStore".to_owned()));
                continue;
            };
            let store = match cached_secret_store(stores, config, registries, &store_name).await {
                Ok(s) => s,
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            match store.get(secret, &Metadata::new()).await {
                Ok(found) => match found.get(key.as_str()) {
                    Some(value) => *v = EndpointValue::Value(value.clone()),
                    None => problems.push(problem(format!(
                        "secret '{secret}' of store '{store_name}' has no key '{key}'"
                    ))),
                },
                Err(e) => problems.push(problem(format!(
                    "secret '{secret}' of store '{store_name}': {e}"
                ))),
            }
        }
    }
    config.http_endpoints = endpoints;
}

/// Secret store `name` of `config` from `stores`, built, initialised and kept there on first use.
async fn cached_secret_store(
    stores: &mut HashMap<String, Arc<dyn SecretStore>>,
    config: &Config,
    registries: &Registries,
    name: &str,
) -> Result<Arc<dyn SecretStore>> {
    if let Some(s) = stores.get(name) {
        return Ok(s.clone());
    }
    let s = open_secret_store(config, registries, name).await?;
    stores.insert(name.to_owned(), s.clone());
    Ok(s)
}

/// Builds and initialises secret store `name` of `config`.
async fn open_secret_store(
    config: &Config,
    registries: &Registries,
    name: &str,
) -> Result<Arc<dyn SecretStore>> {
    let spec = config
        .of_kind(Kind::Secret)
        .find(|e| e.spec.name == name)
        .map(|e| e.spec.clone())
        .ok_or_else(|| Error::invalid(format!("secret store '{name}' is not configured")))?;
    let store = registries
        .create::<dyn SecretStore>(&spec)
        .map_err(|e| e.context(format!("secret store '{name}'")))?;
    store
        .init()
        .await
        .map_err(|e| e.context(format!("secret store '{name}'")))?;
    Ok(store)
}

/// The reference problems and warnings of `entry` that need no I/O: every secret store a
/// `secret_ref` names and every component a `component_ref` names must be configured;
/// a `component_ref` has no effect (no component here takes injected stores).
fn check_refs(config: &Config, entry: &ComponentEntry) -> (Vec<String>, Vec<String>) {
    let exists = |kind: Kind, name: &str| config.of_kind(kind).any(|e| e.spec.name == name);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for r in &entry.secret_refs {
        if let Some(store) = &r.store
            && !exists(Kind::Secret, store)
        {
            problems.push(format!(
                "secret_ref for metadata '{}' names secret store '{store}', which is not configured",
                r.metadata_key
            ));
        }
    }
    for c in &entry.component_refs {
        if exists(c.kind, &c.name) {
            warnings.push(format!(
                "component_ref to {} '{}' has no effect: no component here takes injected stores",
                c.kind, c.name
            ));
        } else {
            problems.push(format!(
                "component_ref names {} '{}', which is not configured",
                c.kind, c.name
            ));
        }
    }
    (problems, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigger_than_floors_are_keyed_as_stored_whatever_the_key_case() {
        let spec = ComponentSpec::new("seq", "t").with("BiggerThan", r#"{"order": 5}"#);
        let keys = KeyPrefix::resolve(&spec, "app", "appid", "sequencer|||").expect("keys");
        let out = stored_floors(&spec, &keys).expect("floors");
        assert_eq!(out.metadata.len(), 1, "replaced under the key as written");
        assert_eq!(
            out.metadata["BiggerThan"],
            r#"{"sequencer|||app||order":5}"#
        );
    }
}
