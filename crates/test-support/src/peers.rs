//! Peer programs built from source by the test harness, once per version, and cached outside
//! the repository.
//!
//! A peer is a Go module served by the Go module proxy (see [`Peer`]), or Kafka's broker jars
//! from Maven Central ([`kafka_jars`]). [`binary`] returns the
//! path of its built binary, building it first when the cache lacks it:
//!
//! 1. `go mod download -json MODULE@VERSION` puts the module source in the Go module cache
//!    (read-only) and prints its `Dir`;
//! 2. the source is copied to a writable scratch dir under the cache, the peer's own preparation
//!    runs (FerretDB wants `build/version/version.txt`);
//! 3. `go build` writes the binary, which is renamed into `CACHE/NAME-VERSION/NAME` last, so a
//!    half-built binary is never taken for a cached one.
//!
//! The cache root is `$LAYOTTO_PEER_CACHE`, else `$XDG_CACHE_HOME/layotto-rs/peers`, else
//! `$HOME/.cache/layotto-rs/peers`. A lock file per peer makes concurrent test binaries wait for
//! one build instead of running several. `GOTOOLCHAIN=local` and `GOWORK=off` keep the build on
//! the installed Go and away from any workspace; nothing is downloaded beyond the Go module proxy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A Go peer: its module, version, main package and preparation.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Short name: the cache dir prefix and the binary name.
    pub name: &'static str,
    /// Go module path.
    pub module: &'static str,
    /// Module version (the cache key).
    pub version: &'static str,
    /// Package to build, relative to the module root.
    pub package: &'static str,
    /// Extra `go build` flags (`-tags ...`).
    pub build_flags: &'static [&'static str],
    /// Files written into the copied source before the build: (relative path, contents).
    pub prepare: &'static [(&'static str, &'static str)],
    /// For `k8s.io/kubernetes`: the version of the published `k8s.io/*` staging modules that
    /// replace the go.mod's `=> ./staging/src/k8s.io/X` lines (the module zip lacks
    /// `staging/`).
    pub staging_modules: Option<&'static str>,
}

/// FerretDB v1.24.2, a MongoDB wire-protocol server (its SQLite handler needs no other server).
/// Its build reads the version from `build/version/version.txt`, which the module zip lacks.
pub const FERRETDB: Peer = Peer {
    name: "ferretdb",
    module: "github.com/FerretDB/FerretDB",
    version: "v1.24.2",
    package: "./cmd/ferretdb",
    build_flags: &[],
    prepare: &[("build/version/version.txt", "v1.24.2\n")],
    staging_modules: None,
};

/// Jaeger v1.76.0's all-in-one (collector with OTLP receivers, in-memory storage, query API).
pub const JAEGER: Peer = Peer {
    name: "jaeger-all-in-one",
    module: "github.com/jaegertracing/jaeger",
    version: "v1.76.0",
    package: "./cmd/all-in-one",
    build_flags: &[],
    prepare: &[],
    staging_modules: None,
};

/// Dapr's sidecar `daprd` v1.14.0 with its stable components (`allcomponents` does not build
/// on Go 1.26: no SQLite name resolver, etcd state or JetStream in this build).
pub const DAPRD: Peer = Peer {
    name: "daprd",
    module: "github.com/dapr/dapr",
    version: "v1.14.0",
    package: "./cmd/daprd",
    build_flags: &["-tags", "stablecomponents"],
    prepare: &[],
    staging_modules: None,
};

/// The Kubernetes API server v1.34.4 (`k8s.io/kubernetes`), its staging modules taken from
/// the module proxy at v0.34.4.
pub const KUBE_APISERVER: Peer = Peer {
    name: "kube-apiserver",
    module: "k8s.io/kubernetes",
    version: "v1.34.4",
    package: "./cmd/kube-apiserver",
    build_flags: &[],
    prepare: &[],
    staging_modules: Some("v0.34.4"),
};

/// Helm v3.21.4's `helm`, for `helm lint` and `helm template` of the chart.
pub const HELM: Peer = Peer {
    name: "helm",
    module: "helm.sh/helm/v3",
    version: "v3.21.4",
    package: "./cmd/helm",
    build_flags: &[],
    prepare: &[],
    staging_modules: None,
};

/// Every peer [`binary`] knows, for the `build-peers` tool.
pub const ALL: &[Peer] = &[FERRETDB, JAEGER, DAPRD, KUBE_APISERVER, HELM];

/// The cache root (see the module documentation).
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("LAYOTTO_PEER_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("layotto-rs").join("peers")
}

/// The built binary of `peer`, building it when the cache lacks it.
///
/// # Panics
/// When `go` is missing or a step fails, with the step's command and output: a test cannot run
/// without its server.
pub fn binary(peer: &Peer) -> PathBuf {
    match try_binary(peer) {
        Ok(p) => p,
        Err(e) => panic!(
            "could not build the peer {} {}: {e}",
            peer.name, peer.version
        ),
    }
}

/// [`binary`], returning the failure instead of panicking.
///
/// # Errors
/// The failing step, its command and output.
pub fn try_binary(peer: &Peer) -> Result<PathBuf, String> {
    let dir = cache_root().join(format!("{}-{}", peer.name, peer.version));
    let bin = dir.join(peer.name);
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    // Another process may have built it while this one waited for the lock.
    if bin.is_file() {
        return Ok(bin);
    }
    let started = Instant::now();
    build(peer, &dir, &bin)?;
    eprintln!(
        "built peer {} {} in {:.1} s: {}",
        peer.name,
        peer.version,
        started.elapsed().as_secs_f64(),
        bin.display()
    );
    Ok(bin)
}

fn build(peer: &Peer, dir: &Path, bin: &Path) -> Result<(), String> {
    let go = crate::search_path("go").ok_or_else(|| {
        "`go` was not found on PATH: install Go (Debian package `golang-go`, or the Go \
         toolchain) to build the test peers"
            .to_owned()
    })?;
    let scratch = dir.join("src");
    let _ = std::fs::remove_dir_all(&scratch);
    let download = run(go_cmd(&go, dir)
        .args(["mod", "download", "-json"])
        .arg(format!("{}@{}", peer.module, peer.version)))?;
    let source = json_string(&download, "Dir")
        .ok_or_else(|| format!("`go mod download -json` printed no Dir: {download}"))?;
    run(Command::new("cp").arg("-r").arg(&source).arg(&scratch))?;
    run(Command::new("chmod").arg("-R").arg("u+w").arg(&scratch))?;
    for (path, text) in peer.prepare {
        let p = scratch.join(path);
        std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
    }
    if let Some(v) = peer.staging_modules {
        let go_mod = scratch.join("go.mod");
        let text = std::fs::read_to_string(&go_mod)
            .map_err(|e| format!("read {}: {e}", go_mod.display()))?;
        std::fs::write(&go_mod, staging_replaced(&text, v))
            .map_err(|e| format!("write {}: {e}", go_mod.display()))?;
    }
    let partial = dir.join(format!("{}.partial", peer.name));
    run(go_cmd(&go, &scratch)
        .arg("build")
        .args(peer.build_flags)
        .arg("-o")
        .arg(&partial)
        .arg(peer.package))?;
    std::fs::rename(&partial, bin).map_err(|e| format!("rename into {}: {e}", bin.display()))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// Runs the [`HELM`] peer with `args` (its cache and config in the temp dir), returning its
/// standard output.
///
/// # Panics
/// When Helm cannot be built or run, or exits unsuccessfully (with its output).
pub fn helm(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(binary(&HELM))
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("layotto-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("layotto-helm-config"),
        )
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `go_mod` with each `=> ./staging/src/k8s.io/X` replacement pointing at the published
/// module `k8s.io/X` at `version`.
fn staging_replaced(go_mod: &str, version: &str) -> String {
    go_mod
        .lines()
        .map(|l| match l.split_once("=> ./staging/src/") {
            Some((head, module)) => format!("{head}=> {} {version}", module.trim()),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Apache Kafka's broker from Maven Central: `org.apache.kafka:kafka_2.13` and its runtime
/// dependencies, run in KRaft mode on the installed Java 17 by [`crate::KafkaServer`].
pub const KAFKA_VERSION: &str = "4.1.1";

/// The directory holding the Kafka broker's jars (a classpath of `DIR/*`), fetched with
/// `mvn dependency:copy-dependencies` into `CACHE/kafka-VERSION/libs` when the cache lacks
/// them; the dir is renamed into place last, so a half-fetched set is never taken for a
/// cached one.
///
/// # Errors
/// When `mvn` is missing or the fetch fails, with its command and output.
pub fn try_kafka_jars() -> Result<PathBuf, String> {
    let dir = cache_root().join(format!("kafka-{KAFKA_VERSION}"));
    let libs = dir.join("libs");
    if libs.is_dir() {
        return Ok(libs);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if libs.is_dir() {
        return Ok(libs);
    }
    let mvn = crate::search_path("mvn").ok_or_else(|| {
        "`mvn` was not found on PATH: install Maven (Debian package `maven`) to fetch the \
         Kafka broker jars"
            .to_owned()
    })?;
    let started = Instant::now();
    let pom = format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  <modelVersion>4.0.0</modelVersion>\n  \
         <groupId>layotto-rs.test</groupId>\n  <artifactId>kafka-broker</artifactId>\n  \
         <version>1</version>\n  <packaging>pom</packaging>\n  <dependencies>\n    <dependency>\n      \
         <groupId>org.apache.kafka</groupId>\n      <artifactId>kafka_2.13</artifactId>\n      \
         <version>{KAFKA_VERSION}</version>\n    </dependency>\n  </dependencies>\n</project>\n"
    );
    std::fs::write(dir.join("pom.xml"), pom).map_err(|e| format!("write pom.xml: {e}"))?;
    let partial = dir.join("libs.partial");
    let _ = std::fs::remove_dir_all(&partial);
    run(Command::new(mvn)
        .current_dir(&dir)
        .args([
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
        ])
        .arg(format!("-DoutputDirectory={}", partial.display())))?;
    std::fs::rename(&partial, &libs).map_err(|e| format!("rename into {}: {e}", libs.display()))?;
    eprintln!(
        "fetched the Kafka {KAFKA_VERSION} broker jars in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        libs.display()
    );
    Ok(libs)
}

/// [`try_kafka_jars`], panicking with the failure: a test cannot run without its broker.
///
/// # Panics
/// When the jars cannot be fetched.
pub fn kafka_jars() -> PathBuf {
    try_kafka_jars().unwrap_or_else(|e| panic!("could not fetch the Kafka broker jars: {e}"))
}

fn go_cmd(go: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(go);
    c.current_dir(cwd)
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GOFLAGS", "-mod=mod");
    c
}

/// Runs `cmd`; its stdout on success, else an error with the command and its output.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The string value of `"key": "..."` in `go`'s JSON output (paths only: no escapes beyond
/// `\\` and `\"`).
fn json_string(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":"))?;
    let rest = text[at + key.len() + 3..].trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_replacements_point_at_published_modules() {
        let m = "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tfoo => bar v1\n)";
        assert_eq!(
            staging_replaced(m, "v0.34.4"),
            "replace (\n\tk8s.io/api => k8s.io/api v0.34.4\n\tfoo => bar v1\n)\n"
        );
    }

    #[test]
    fn reads_the_dir_of_go_mod_download() {
        let text = "{\n\t\"Path\": \"m\",\n\t\"Dir\": \"/root/go/pkg/mod/github.com/!a@v1\",\n}";
        assert_eq!(
            json_string(text, "Dir").as_deref(),
            Some("/root/go/pkg/mod/github.com/!a@v1")
        );
        assert_eq!(json_string(text, "GoMod"), None);
    }
}
