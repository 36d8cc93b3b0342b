//! Suite of the [`SecretStore`] contract: reading the secrets the test prepared, a missing
//! secret, an empty name, bulk reads, and nested names when the store has them.
//!
//! A secret store is read-only, so the test prepares its content (a JSON file, environment
//! variables, a vault...) and describes it in a [`SecretFixture`]; the suite takes a factory of
//! ready stores over that content plus the fixture.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use layotto_core::secret::{Secret, SecretStore};
use layotto_core::{ErrorKind, Feature, Metadata};

use crate::run::SuiteRun;
use crate::unique;

/// The features this suite has cases for: none (Dapr defines no secret store features); a
/// component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// What the test put into the store before building it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFixture {
    /// Secrets with plain names, by name, with their exact values. At least one.
    pub secrets: HashMap<String, Secret>,
    /// Secrets whose names join nested keys with the store's separator (e.g. `db:password`),
    /// with their exact values; empty when the store has no nesting (the case is skipped).
    pub nested: HashMap<String, Secret>,
    /// Whether `bulk_get` returns exactly `secrets` and `nested` (a store the test filled
    /// entirely) or may return more (e.g. the whole process environment).
    pub bulk_is_exact: bool,
}

fn secret_of(pairs: &[(&str, &str)]) -> Secret {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl SecretFixture {
    /// A fixture of plain secrets given as `(name, [(key, value)...])`, with no nesting and an
    /// exact bulk read.
    pub fn of(secrets: &[(&str, &[(&str, &str)])]) -> Self {
        Self {
            secrets: secrets
                .iter()
                .map(|(n, pairs)| ((*n).to_owned(), secret_of(pairs)))
                .collect(),
            nested: HashMap::new(),
            bulk_is_exact: true,
        }
    }

    /// Adds a nested secret (builder style).
    #[must_use]
    pub fn with_nested(mut self, name: &str, pairs: &[(&str, &str)]) -> Self {
        self.nested.insert(name.to_owned(), secret_of(pairs));
        self
    }

    fn all(&self) -> impl Iterator<Item = (&String, &Secret)> {
        self.secrets.iter().chain(&self.nested)
    }
}

/// Runs every case against a fresh store from `factory`, which must serve the content
/// `fixture` describes; prints each skipped case.
///
/// # Panics
/// When a case fails (its message, then the run's summary), when the fixture holds no plain
/// secret, or when the component claims a feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F, fixture: &SecretFixture)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SecretStore>>,
{
    assert!(
        !fixture.secrets.is_empty(),
        "secret suite: the fixture holds no plain secret"
    );
    let mut run = SuiteRun::start("secret", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("secret::get_existing", async {
        get_existing(&*f().await, fixture).await;
    })
    .await;
    run.case("secret::get_missing", async {
        get_missing(&*f().await).await;
    })
    .await;
    run.case("secret::empty_name", async {
        empty_name(&*f().await).await;
    })
    .await;
    run.case("secret::bulk_get", async {
        bulk_get(&*f().await, fixture).await;
    })
    .await;
    if fixture.nested.is_empty() {
        run.skip("secret::nested_keys", "the fixture has no nested secrets");
    } else {
        run.case("secret::nested_keys", async {
            nested_keys(&*f().await, fixture).await;
        })
        .await;
    }
    run.finish();
}

/// Every plain secret of the fixture reads back with exactly its values, twice (a store that
/// caches must serve the same).
pub async fn get_existing(store: &dyn SecretStore, fixture: &SecretFixture) {
    let case = "secret::get_existing";
    for _ in 0..2 {
        for (name, want) in &fixture.secrets {
            let got = store
                .get(name, &Metadata::new())
                .await
                .unwrap_or_else(|e| panic!("{case}: get '{name}' failed: {e}"));
            assert_eq!(&got, want, "{case}: secret '{name}'");
        }
    }
}

/// A secret that does not exist is `NotFound`, and the message names it.
pub async fn get_missing(store: &dyn SecretStore) {
    let case = "secret::get_missing";
    let name = unique("no-such-secret");
    match store.get(&name, &Metadata::new()).await {
        Ok(s) => panic!("{case}: get of a missing secret returned {s:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::NotFound, "{case}: {e:?}");
            assert!(
                e.message.contains(&name),
                "{case}: the message does not name the secret: {e}"
            );
        }
    }
}

/// An empty secret name is an error (`NotFound` or `InvalidArgument`), never a secret.
pub async fn empty_name(store: &dyn SecretStore) {
    let case = "secret::empty_name";
    match store.get("", &Metadata::new()).await {
        Ok(s) => panic!("{case}: get of '' returned {s:?}"),
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidArgument),
            "{case}: get of '' failed with {e:?}, expected NotFound or InvalidArgument"
        ),
    }
}

/// `bulk_get` holds every secret of the fixture (plain and nested) with exactly its values;
/// with an exact fixture, nothing else.
pub async fn bulk_get(store: &dyn SecretStore, fixture: &SecretFixture) {
    let case = "secret::bulk_get";
    let all = store
        .bulk_get(&Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: bulk_get failed: {e}"));
    for (name, want) in fixture.all() {
        let got = all
            .get(name)
            .unwrap_or_else(|| panic!("{case}: secret '{name}' is missing from bulk_get"));
        assert_eq!(got, want, "{case}: secret '{name}' in bulk_get");
    }
    if fixture.bulk_is_exact {
        let mut extra: Vec<&String> = all
            .keys()
            .filter(|k| !fixture.secrets.contains_key(*k) && !fixture.nested.contains_key(*k))
            .collect();
        extra.sort();
        assert!(
            extra.is_empty(),
            "{case}: bulk_get returned secrets the fixture does not list: {extra:?}"
        );
    }
}

/// Nested names read back with exactly their values.
pub async fn nested_keys(store: &dyn SecretStore, fixture: &SecretFixture) {
    let case = "secret::nested_keys";
    for (name, want) in &fixture.nested {
        let got = store
            .get(name, &Metadata::new())
            .await
            .unwrap_or_else(|e| panic!("{case}: get of nested '{name}' failed: {e}"));
        assert_eq!(&got, want, "{case}: nested secret '{name}'");
    }
}
