//! The `local` file store: files under one root directory of the local file system.

use std::io;
use std::path::{Component as PathPart, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use layotto_core::file::{ByteStream, FileInfo, FileMeta, FileStore, ListPage, ListRequest};
use layotto_core::metadata::decode;
use layotto_core::state::rfc3339;
use layotto_core::{Component, ComponentMetadata, ComponentSpec, Error, Health, Metadata, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

/// Type string of [`LocalFileStore`].
pub const TYPE: &str = "local";
/// Component metadata key of the root directory (required).
pub const ROOT_KEY: &str = "root";

/// The root of a `local` file store whose metadata gives none: `layotto-files` under the
/// working directory. Layotto's own `local` store takes any path a client sends (its configs
/// give no root); here every store is confined to a root, so a config without one gets this.
pub const DEFAULT_ROOT: &str = "layotto-files";
/// Size of the chunks `get` streams, in bytes (64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Page size of `list` when the request gives 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size of `list`; larger requests are reduced to it.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Marker in the names of temporary files written by `put` (hidden from `list`).
const TMP_MARKER: &str = ".layotto-tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Metadata of [`LocalFileStore`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct LocalFileMetadata {
    /// `root`: the directory holding the files, relative to the working directory unless
    /// absolute (default [`DEFAULT_ROOT`]; created by `init` if missing).
    pub root: Option<String>,
}

impl ComponentMetadata for LocalFileMetadata {}

/// Files stored under a root directory (type `local`).
///
/// Names are relative paths with `/` separators. A name that is absolute, contains `..` or a
/// NUL byte is an invalid argument; a name that resolves (through symbolic links) outside the
/// root is refused with permission denied. Writes are atomic: a temporary file in the same
/// directory is renamed into place once the whole stream has been written.
#[derive(Debug)]
pub struct LocalFileStore {
    name: String,
    root: PathBuf,
    canonical_root: OnceCell<PathBuf>,
}

/// Removes a temporary file unless disarmed (also when the writing future is dropped).
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl LocalFileStore {
    /// A store named `name` rooted at `root` (relative paths are relative to the working
    /// directory). No I/O happens until [`Component::init`] or the first call.
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            root: root.into(),
            canonical_root: OnceCell::new(),
        }
    }

    /// Factory: [`LocalFileMetadata`] (`root`, required).
    ///
    /// # Errors
    /// Invalid argument when `root` is missing.
    pub fn from_spec(spec: &ComponentSpec) -> Result<Self> {
        let meta: LocalFileMetadata = decode(spec)?;
        let root = meta.root.unwrap_or_else(|| DEFAULT_ROOT.to_owned());
        Ok(Self::new(spec.name.clone(), root))
    }

    fn ctx(&self) -> String {
        format!("file store '{}'", self.name)
    }

    fn io_err(&self, what: &str, name: &str, e: &io::Error) -> Error {
        let msg = format!("{}: {what} '{name}': {e}", self.ctx());
        match e.kind() {
            io::ErrorKind::NotFound => {
                Error::not_found(format!("{}: file '{name}' not found", self.ctx()))
            }
            io::ErrorKind::PermissionDenied => Error::permission_denied(msg),
            io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::InvalidFilename => Error::invalid(msg),
            _ => Error::internal(msg),
        }
    }

    /// Validates `name` and returns it as a relative path without `.` components.
    fn rel_path(&self, name: &str, allow_empty: bool) -> Result<PathBuf> {
        if name.contains('\0') {
            return Err(Error::invalid(format!(
                "{}: file name '{}' contains a NUL byte",
                self.ctx(),
                name.escape_default()
            )));
        }
        let path = Path::new(name);
        if path.is_absolute() || name.starts_with('/') {
            return Err(Error::invalid(format!(
                "{}: file name '{name}' must be relative to the store root",
                self.ctx()
            )));
        }
        let mut rel = PathBuf::new();
        for c in path.components() {
            match c {
                PathPart::Normal(part) => rel.push(part),
                PathPart::CurDir => {}
                PathPart::ParentDir => {
                    return Err(Error::invalid(format!(
                        "{}: file name '{name}' must not contain '..'",
                        self.ctx()
                    )));
                }
                PathPart::RootDir | PathPart::Prefix(_) => {
                    return Err(Error::invalid(format!(
                        "{}: file name '{name}' must be relative to the store root",
                        self.ctx()
                    )));
                }
            }
        }
        if rel.as_os_str().is_empty() && !allow_empty {
            return Err(Error::invalid(format!(
                "{}: file name is empty",
                self.ctx()
            )));
        }
        Ok(rel)
    }

    /// The canonical root, creating the directory on first use.
    async fn root(&self) -> Result<&Path> {
        let root = self
            .canonical_root
            .get_or_try_init(|| async {
                let shown = self.root.display().to_string();
                tokio::fs::create_dir_all(&self.root)
                    .await
                    .map_err(|e| self.io_err("cannot create root directory", &shown, &e))?;
                let canon = tokio::fs::canonicalize(&self.root)
                    .await
                    .map_err(|e| self.io_err("cannot resolve root directory", &shown, &e))?;
                if !tokio::fs::metadata(&canon)
                    .await
                    .map_err(|e| self.io_err("cannot read root directory", &shown, &e))?
                    .is_dir()
                {
                    return Err(Error::invalid(format!(
                        "{}: root '{shown}' is not a directory",
                        self.ctx()
                    )));
                }
                Ok::<_, Error>(canon)
            })
            .await?;
        Ok(root.as_path())
    }

    fn check_inside(&self, root: &Path, canonical: &Path, name: &str) -> Result<()> {
        if canonical.starts_with(root) {
            Ok(())
        } else {
            Err(Error::permission_denied(format!(
                "{}: '{name}' resolves outside the store root",
                self.ctx()
            )))
        }
    }

    /// Resolves an existing `name` to its canonical path inside the root.
    async fn resolve_existing(&self, name: &str) -> Result<(PathBuf, std::fs::Metadata)> {
        let rel = self.rel_path(name, false)?;
        let root = self.root().await?;
        let canon = tokio::fs::canonicalize(root.join(&rel))
            .await
            .map_err(|e| self.io_err("cannot resolve", name, &e))?;
        self.check_inside(root, &canon, name)?;
        let meta = tokio::fs::metadata(&canon)
            .await
            .map_err(|e| self.io_err("cannot stat", name, &e))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{}: '{name}' is not a regular file",
                self.ctx()
            )));
        }
        Ok((canon, meta))
    }

    /// Creates the parent directories of `rel` inside the root and returns the canonical parent.
    async fn prepare_parent(&self, root: &Path, rel: &Path, name: &str) -> Result<PathBuf> {
        let parent = match rel.parent() {
            Some(p) => root.join(p),
            None => root.to_path_buf(),
        };
        // Before creating anything, the deepest existing ancestor must lie inside the root, so
        // that no directory is created through a link that leaves it.
        let mut existing = parent.clone();
        loop {
            match tokio::fs::symlink_metadata(&existing).await {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound && existing != root => {
                    existing.pop();
                }
                Err(e) => return Err(self.io_err("cannot stat parent of", name, &e)),
            }
        }
        let canon_existing = tokio::fs::canonicalize(&existing).await.map_err(|_| {
            Error::permission_denied(format!(
                "{}: '{name}' passes through a dangling symbolic link",
                self.ctx()
            ))
        })?;
        self.check_inside(root, &canon_existing, name)?;
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| self.io_err("cannot create directories for", name, &e))?;
        let canon_parent = tokio::fs::canonicalize(&parent)
            .await
            .map_err(|e| self.io_err("cannot resolve parent of", name, &e))?;
        self.check_inside(root, &canon_parent, name)?;
        Ok(canon_parent)
    }
}

fn is_tmp_name(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(TMP_MARKER)
}

/// Regular files (not following links) below `dir`, as root-relative `/`-separated names.
fn walk(root: &Path, dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let Ok(rel) = path.strip_prefix(root) else {
                    continue;
                };
                let parts: Option<Vec<&str>> =
                    rel.components().map(|c| c.as_os_str().to_str()).collect();
                match parts {
                    Some(parts) => {
                        if parts.last().is_some_and(|f| is_tmp_name(f)) {
                            continue;
                        }
                        out.push(parts.join("/"));
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "skipping file whose name is not UTF-8");
                    }
                }
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl Component for LocalFileStore {
    /// Creates the root directory if missing. Errors: the root cannot be created or is no
    /// directory.
    async fn init(&self) -> Result<()> {
        self.root().await.map(|_| ())
    }

    /// `UP` while the root is a readable directory.
    async fn health(&self) -> Health {
        match self.root().await {
            Err(e) => Health::down(e.message),
            Ok(root) => match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => Health::up(),
                Ok(_) => Health::down(format!("root '{}' is not a directory", root.display())),
                Err(e) => Health::down(format!("root '{}': {e}", root.display())),
            },
        }
    }
}

#[async_trait]
impl FileStore for LocalFileStore {
    /// Writes `name` atomically, creating parent directories inside the root. Errors: invalid
    /// argument for a bad name, permission denied outside the root, the stream's own error (no
    /// file is left then), internal for I/O failures.
    async fn put(&self, name: &str, mut data: ByteStream, _metadata: &Metadata) -> Result<()> {
        let rel = self.rel_path(name, false)?;
        let root = self.root().await?;
        let parent = self.prepare_parent(root, &rel, name).await?;
        let file_name = rel
            .file_name()
            .and_then(|f| f.to_str())
            .ok_or_else(|| Error::invalid(format!("{}: bad file name '{name}'", self.ctx())))?;
        let target = parent.join(file_name);
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(format!(
                "{}: '{name}' is a directory",
                self.ctx()
            )));
        }
        let tmp = parent.join(format!(
            ".{file_name}{TMP_MARKER}{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| self.io_err("cannot create", name, &e))?;
        let mut guard = TmpGuard(Some(tmp.clone()));
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            file.write_all(&chunk)
                .await
                .map_err(|e| self.io_err("cannot write", name, &e))?;
        }
        file.flush()
            .await
            .map_err(|e| self.io_err("cannot write", name, &e))?;
        file.sync_all()
            .await
            .map_err(|e| self.io_err("cannot sync", name, &e))?;
        drop(file);
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|e| self.io_err("cannot rename into place", name, &e))?;
        guard.0 = None;
        Ok(())
    }

    /// Streams `name` in chunks of [`CHUNK_SIZE`] bytes. Errors: not found, invalid argument
    /// for a bad name or a directory, permission denied outside the root.
    async fn get(&self, name: &str, _metadata: &Metadata) -> Result<ByteStream> {
        let (path, _) = self.resolve_existing(name).await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io_err("cannot open", name, &e))?;
        let ctx = format!("{}: cannot read '{name}'", self.ctx());
        Ok(
            tokio_util::io::ReaderStream::with_capacity(file, CHUNK_SIZE)
                .map(move |r| r.map_err(|e| Error::internal(format!("{ctx}: {e}"))))
                .boxed(),
        )
    }

    /// Lists regular files below `directory` (recursively, sorted by name, names relative to
    /// the root) after `marker`, at most `page_size` (0 = 100, at most 1000). A missing
    /// directory lists as empty. Errors: invalid argument for a bad name or a non-directory,
    /// permission denied outside the root.
    async fn list(&self, req: &ListRequest) -> Result<ListPage> {
        let rel = self.rel_path(&req.directory, true)?;
        let root = self.root().await?;
        let dir = match tokio::fs::canonicalize(root.join(&rel)).await {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ListPage::default()),
            Err(e) => return Err(self.io_err("cannot resolve directory", &req.directory, &e)),
        };
        self.check_inside(root, &dir, &req.directory)?;
        let is_dir = tokio::fs::metadata(&dir)
            .await
            .map_err(|e| self.io_err("cannot stat directory", &req.directory, &e))?
            .is_dir();
        if !is_dir {
            return Err(Error::invalid(format!(
                "{}: '{}' is not a directory",
                self.ctx(),
                req.directory
            )));
        }
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        } as usize;
        let walk_root = root.to_path_buf();
        let walk_dir = dir.clone();
        let mut names = tokio::task::spawn_blocking(move || walk(&walk_root, &walk_dir))
            .await
            .map_err(|e| Error::internal(format!("{}: listing failed: {e}", self.ctx())))?
            .map_err(|e| self.io_err("cannot list directory", &req.directory, &e))?;
        names.sort_unstable();
        let start = names.partition_point(|n| n.as_str() <= req.marker.as_str());
        let rest = &names[start..];
        let is_truncated = rest.len() > page_size;
        let mut files = Vec::with_capacity(rest.len().min(page_size));
        for n in rest.iter().take(page_size) {
            // A file removed meanwhile is left out.
            let Ok(meta) = tokio::fs::symlink_metadata(root.join(n)).await else {
                continue;
            };
            files.push(FileInfo {
                name: n.clone(),
                size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
                last_modified: meta.modified().map(rfc3339).unwrap_or_default(),
                metadata: Metadata::new(),
            });
        }
        let marker = rest[..rest.len().min(page_size)]
            .last()
            .cloned()
            .unwrap_or_default();
        Ok(ListPage {
            files,
            marker,
            is_truncated,
        })
    }

    /// Deletes `name` (a symbolic link itself, not its target). Errors as for `get`.
    async fn delete(&self, name: &str, _metadata: &Metadata) -> Result<()> {
        let rel = self.rel_path(name, false)?;
        self.resolve_existing(name).await?;
        let root = self.root().await?;
        let parent = match rel.parent() {
            Some(p) => root.join(p),
            None => root.to_path_buf(),
        };
        let canon_parent = tokio::fs::canonicalize(&parent)
            .await
            .map_err(|e| self.io_err("cannot resolve parent of", name, &e))?;
        self.check_inside(root, &canon_parent, name)?;
        let Some(file_name) = rel.file_name() else {
            return Err(Error::invalid(format!(
                "{}: bad file name '{name}'",
                self.ctx()
            )));
        };
        tokio::fs::remove_file(canon_parent.join(file_name))
            .await
            .map_err(|e| self.io_err("cannot delete", name, &e))
    }

    /// Size (bytes) and modification time (RFC 3339, UTC) of `name`. Errors as for `get`.
    async fn stat(&self, name: &str, _metadata: &Metadata) -> Result<FileMeta> {
        let (_, meta) = self.resolve_existing(name).await?;
        Ok(FileMeta {
            size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
            last_modified: meta.modified().map(rfc3339).unwrap_or_default(),
            metadata: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use layotto_core::ErrorKind;

    use super::*;

    fn store(dir: &Path) -> LocalFileStore {
        LocalFileStore::from_spec(
            &ComponentSpec::new("f", TYPE).with(ROOT_KEY, dir.join("root").display().to_string()),
        )
        .expect("spec")
    }

    fn body(chunks: &[&'static str]) -> ByteStream {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn read(s: &LocalFileStore, name: &str) -> Result<Vec<u8>> {
        let mut st = s.get(name, &Metadata::new()).await?;
        let mut out = Vec::new();
        while let Some(c) = st.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn put_get_stat_delete() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = store(tmp.path());
        s.init().await.expect("init creates root");
        let md = Metadata::new();
        s.put("a/b/c.txt", body(&["hello ", "world"]), &md)
            .await
            .expect("put");
        assert_eq!(read(&s, "a/b/c.txt").await.expect("get"), b"hello world");
        assert_eq!(read(&s, "./a/b/c.txt").await.expect("get"), b"hello world");
        let meta = s.stat("a/b/c.txt", &md).await.expect("stat");
        assert_eq!(meta.size, 11);
        assert!(meta.last_modified.ends_with('Z'), "{}", meta.last_modified);
        // Big file spans several chunks.
        let big: &'static str = Box::leak("x".repeat(CHUNK_SIZE * 2 + 5).into_boxed_str());
        s.put("big", body(&[big]), &md).await.expect("put big");
        let mut st = s.get("big", &md).await.expect("get big");
        let mut n = 0;
        while let Some(c) = st.next().await {
            let c = c.expect("chunk");
            assert!(c.len() <= CHUNK_SIZE);
            n += c.len();
        }
        assert_eq!(n, CHUNK_SIZE * 2 + 5);

        s.delete("a/b/c.txt", &md).await.expect("delete");
        for e in [
            s.delete("a/b/c.txt", &md).await.expect_err("gone"),
            s.stat("a/b/c.txt", &md).await.expect_err("gone"),
            read(&s, "a/b/c.txt").await.expect_err("gone"),
        ] {
            assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
            assert!(e.message.contains("a/b/c.txt"), "{e}");
        }
        let e = read(&s, "a").await.expect_err("directory");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn failed_stream_leaves_no_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = store(tmp.path());
        let md = Metadata::new();
        s.put("f", body(&["old"]), &md).await.expect("put");
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"new")),
            Err(Error::unavailable("client went away")),
        ])
        .boxed();
        let e = s.put("f", failing, &md).await.expect_err("stream error");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(read(&s, "f").await.expect("old content"), b"old");
        let failing = futures::stream::iter(vec![Err(Error::unavailable("x"))]).boxed();
        assert!(s.put("g", failing, &md).await.is_err());
        let page = s.list(&ListRequest::default()).await.expect("list");
        let names: Vec<_> = page.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["f"]);
        let leftovers = std::fs::read_dir(tmp.path().join("root"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn refuses_escapes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::write(outside.join("secret"), "s").expect("secret");
        let s = store(tmp.path());
        s.init().await.expect("init");
        let root = tmp.path().join("root");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("dir link");
        std::os::unix::fs::symlink(outside.join("secret"), root.join("flink")).expect("file link");
        let md = Metadata::new();

        for bad in [
            "../outside/secret",
            "a/../../x",
            "/etc/passwd",
            "a\0b",
            "",
            ".",
        ] {
            let e = read(&s, bad).await.expect_err(bad);
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}: {e}");
            let e = s.put(bad, body(&["x"]), &md).await.expect_err(bad);
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        for bad in ["link/secret", "flink"] {
            let e = read(&s, bad).await.expect_err(bad);
            assert_eq!(e.kind, ErrorKind::PermissionDenied, "{bad}: {e}");
            let e = s.stat(bad, &md).await.expect_err(bad);
            assert_eq!(e.kind, ErrorKind::PermissionDenied, "{bad}: {e}");
            let e = s.delete(bad, &md).await.expect_err(bad);
            assert_eq!(e.kind, ErrorKind::PermissionDenied, "{bad}: {e}");
        }
        let e = s
            .put("link/new", body(&["x"]), &md)
            .await
            .expect_err("write through link");
        assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
        let e = s
            .put("link/deep/new", body(&["x"]), &md)
            .await
            .expect_err("mkdir through link");
        assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
        assert!(!outside.join("new").exists() && !outside.join("deep").exists());
        let e = s
            .list(&ListRequest {
                directory: "link".into(),
                ..Default::default()
            })
            .await
            .expect_err("list through link");
        assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
        assert!(outside.join("secret").exists());
    }

    #[tokio::test]
    async fn list_pages_with_marker() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = store(tmp.path());
        let md = Metadata::new();
        let names = ["a/1", "a/2", "a/sub/3", "b/4", "c"];
        for n in names {
            s.put(n, body(&["x"]), &md).await.expect("put");
        }
        let mut seen = Vec::new();
        let mut marker = String::new();
        loop {
            let page = s
                .list(&ListRequest {
                    page_size: 2,
                    marker: marker.clone(),
                    ..Default::default()
                })
                .await
                .expect("list");
            assert!(page.files.len() <= 2);
            seen.extend(page.files.iter().map(|f| f.name.clone()));
            marker = page.marker;
            if !page.is_truncated {
                break;
            }
        }
        assert_eq!(seen, names);
        let page = s
            .list(&ListRequest {
                directory: "a".into(),
                ..Default::default()
            })
            .await
            .expect("list a");
        let got: Vec<_> = page.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(got, ["a/1", "a/2", "a/sub/3"]);
        assert!(!page.is_truncated);
        assert_eq!(page.marker, "a/sub/3");
        assert_eq!(page.files[0].size, 1);
        let empty = s
            .list(&ListRequest {
                directory: "nope".into(),
                ..Default::default()
            })
            .await
            .expect("missing dir");
        assert!(empty.files.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn a_store_without_root_is_confined_to_the_default_root() {
        let s = LocalFileStore::from_spec(&ComponentSpec::new("f", TYPE)).expect("default root");
        assert_eq!(s.root, std::path::Path::new(DEFAULT_ROOT));
    }
}
