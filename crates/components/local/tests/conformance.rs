//! The local components against their suites: the `local` file store, the `local.file` and
//! `local.env` secret stores, and the input side of the `cron` binding.

use std::path::Path;
use std::sync::Arc;

use layotto_components_local::secret_local::{
    FILE_TYPE, MULTI_VALUED_KEY, NESTED_SEPARATOR_KEY, PREFIX_KEY, SECRETS_FILE_KEY,
};
use layotto_components_local::{LocalEnvSecretStore, LocalFileSecretStore, LocalFileStore};
use layotto_conformance::secret::SecretFixture;
use layotto_core::file::FileStore;
use layotto_core::secret::SecretStore;
use layotto_core::{Component, ComponentSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("root");
    layotto_conformance::file::run_all(|| async {
        let s = LocalFileStore::new("conformance", &root);
        s.init().await.expect("init local file store");
        Arc::new(s) as Arc<dyn FileStore>
    })
    .await;
    let beside: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read the temporary directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        beside,
        ["root"],
        "a refused name left a file outside the root"
    );
}

/// A symbolic link inside the root that points outside it does not let a name escape: reads and
/// writes through it are refused with `PermissionDenied` and nothing is written outside.
#[cfg(unix)]
#[tokio::test]
async fn file_store_symlink_escape_refused() {
    use futures::StreamExt;
    use layotto_core::{ErrorKind, Metadata};

    let dir = tempfile::tempdir().expect("temporary directory");
    let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
    std::fs::create_dir_all(&root).expect("root");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret.txt"), "not yours").expect("outside file");
    std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
    let s = LocalFileStore::new("conformance", &root);
    s.init().await.expect("init local file store");
    let md = Metadata::new();
    let kind = |r: layotto_core::Result<()>| r.err().map(|e| e.kind);
    assert_eq!(
        kind(s.get("link/secret.txt", &md).await.map(|_| ())),
        Some(ErrorKind::PermissionDenied),
        "read through a link leaving the root"
    );
    assert_eq!(
        kind(s.stat("link/secret.txt", &md).await.map(|_| ())),
        Some(ErrorKind::PermissionDenied),
        "stat through a link leaving the root"
    );
    let body = futures::stream::iter([Ok(bytes::Bytes::from("x"))]).boxed();
    assert_eq!(
        kind(s.put("link/new.txt", body, &md).await),
        Some(ErrorKind::PermissionDenied),
        "write through a link leaving the root"
    );
    assert!(
        !outside.join("new.txt").exists(),
        "a file was written outside the root"
    );
    assert!(
        outside.join("secret.txt").exists(),
        "the outside file is intact"
    );
}

const DOC: &str = r#"{
    "token": "t0k3n",
    "port": 6379,
    "db": {"password": "pw", "user": "admin"},
    "hosts": ["h1", "h2"]
}"#;

fn secrets_file(dir: &Path) -> String {
    let path = dir.join("secrets.json");
    std::fs::write(&path, DOC).expect("write the secrets file");
    path.display().to_string()
}

async fn file_secret_store(spec: &ComponentSpec) -> Arc<dyn SecretStore> {
    let s = LocalFileSecretStore::from_spec(spec).expect("valid spec");
    s.init().await.expect("init local.file");
    Arc::new(s)
}

/// Flattened (the default): every leaf is a secret, nested keys joined with `:`.
#[tokio::test]
async fn file_secrets_flattened() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = ComponentSpec::new("conformance", FILE_TYPE)
        .with(SECRETS_FILE_KEY, secrets_file(dir.path()));
    let fixture = SecretFixture::of(&[
        ("token", &[("token", "t0k3n")]),
        ("port", &[("port", "6379")]),
    ])
    .with_nested("db:password", &[("db:password", "pw")])
    .with_nested("db:user", &[("db:user", "admin")])
    .with_nested("hosts:0", &[("hosts:0", "h1")])
    .with_nested("hosts:1", &[("hosts:1", "h2")]);
    layotto_conformance::secret::run_all(|| file_secret_store(&spec), &fixture).await;
}

/// `multiValued` with separator `.`: every top-level key is one secret holding its leaves.
#[tokio::test]
async fn file_secrets_multi_valued() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = ComponentSpec::new("conformance", FILE_TYPE)
        .with(SECRETS_FILE_KEY, secrets_file(dir.path()))
        .with(MULTI_VALUED_KEY, "true")
        .with(NESTED_SEPARATOR_KEY, ".");
    let fixture = SecretFixture::of(&[
        ("token", &[("token", "t0k3n")]),
        ("port", &[("port", "6379")]),
        ("db", &[("password", "pw"), ("user", "admin")]),
        ("hosts", &[("0", "h1"), ("1", "h2")]),
    ]);
    layotto_conformance::secret::run_all(|| file_secret_store(&spec), &fixture).await;
}

/// Set in the child process only (see [`env_secrets`]).
const CHILD: &str = "LAYOTTO_CONFORMANCE_ENV_CHILD";
const ENV_PREFIX: &str = "LAYOTTO_CONF_SECRET_";
const ENV_VARS: &[(&str, &str)] = &[
    ("TOKEN", "t0k3n"),
    ("DB_URL", "postgres://u:p@db:5432/app?sslmode=disable"),
    ("UNICODE", "пароль-密码"),
];

fn env_store(spec: &ComponentSpec) -> Arc<dyn SecretStore> {
    Arc::new(LocalEnvSecretStore::from_spec(spec).expect("valid spec"))
}

/// `local.env` with and without `prefix`. The variables must be set before the process starts
/// (setting them in a running, multi-threaded test process is unsound), so the test runs
/// itself again as a child process with them set.
#[tokio::test]
async fn env_secrets() {
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().expect("the test binary");
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["env_secrets", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1");
        for (k, v) in ENV_VARS {
            cmd.env(format!("{ENV_PREFIX}{k}"), v);
        }
        let out = cmd.output().await.expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        eprintln!("{stderr}");
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child run of env_secrets failed:\n{stdout}\n{stderr}"
        );
        return;
    }
    let prefixed = ComponentSpec::new("conformance", "local.env").with(PREFIX_KEY, ENV_PREFIX);
    let pairs: Vec<(&str, [(&str, &str); 1])> =
        ENV_VARS.iter().map(|(k, v)| (*k, [(*k, *v)])).collect();
    let fixture = SecretFixture::of(
        &pairs
            .iter()
            .map(|(k, p)| (*k, p.as_slice()))
            .collect::<Vec<_>>(),
    );
    layotto_conformance::secret::run_all(|| async { env_store(&prefixed) }, &fixture).await;

    let plain = ComponentSpec::new("conformance", "local.env");
    let full: Vec<(String, String)> = ENV_VARS
        .iter()
        .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), (*v).to_owned()))
        .collect();
    let mut fixture = SecretFixture::of(&[]);
    for (k, v) in &full {
        fixture
            .secrets
            .insert(k.clone(), [(k.clone(), v.clone())].into());
    }
    fixture.bulk_is_exact = false;
    layotto_conformance::secret::run_all(|| async { env_store(&plain) }, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_binding_input() {
    use layotto_components_local::CronBinding;
    use layotto_components_local::binding_cron::{SCHEDULE_KEY, TYPE};
    use layotto_conformance::input_binding::InputSource;
    use layotto_core::binding::OutputBinding;
    let source = InputSource {
        // The timer ticks by itself, every second.
        produce: Box::new(|_| Box::pin(async {})),
        carries_data: false,
        redelivers: false,
        quiet_period: std::time::Duration::from_millis(2500),
    };
    layotto_conformance::input_binding::run_all(
        || async {
            let spec = ComponentSpec::new("tick", TYPE).with(SCHEDULE_KEY, "@every 1s");
            let b = CronBinding::from_spec(&spec).expect("valid schedule");
            b.init().await.expect("init cron binding");
            Arc::new(b) as Arc<dyn OutputBinding>
        },
        &source,
    )
    .await;
}
