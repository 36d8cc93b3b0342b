//! Files: named blobs streamed in chunks, listed in pages.
//!
//! Follows `mosn/layotto:components/file/types.go` (Put, Get, List, Del, Stat).

use std::sync::Arc;

use crate::block::Kind;
use crate::component::{Component, Contract};
use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::component::Metadata;
use crate::error::Result;

/// A stream of file chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileInfo {
    /// Name relative to the listed directory's store root.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Last modification, RFC 3339.
    pub last_modified: String,
    /// Extra facts.
    pub metadata: Metadata,
}

/// A page request of [`FileStore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListRequest {
    /// Directory (or prefix) to list; empty = the root.
    pub directory: String,
    /// Maximum entries in this page; 0 = the store default.
    pub page_size: u32,
    /// Continue after this name (the `marker` of the previous page).
    pub marker: String,
    /// Request metadata.
    pub metadata: Metadata,
}

/// A page of [`FileStore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// Entries, sorted by name.
    pub files: Vec<FileInfo>,
    /// Pass as the next request's marker.
    pub marker: String,
    /// Whether more entries follow.
    pub is_truncated: bool,
}

/// Facts about one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: i64,
    /// Last modification, RFC 3339.
    pub last_modified: String,
    /// Extra facts, each possibly multi-valued.
    pub metadata: HashMap<String, Vec<String>>,
}

/// A file store component.
#[async_trait]
pub trait FileStore: Component {
    /// Writes `name` from `data`; the file appears complete or not at all.
    async fn put(&self, name: &str, data: ByteStream, metadata: &Metadata) -> Result<()>;
    /// Reads `name` as a stream; [`crate::ErrorKind::NotFound`] if absent.
    async fn get(&self, name: &str, metadata: &Metadata) -> Result<ByteStream>;
    /// Lists one page.
    async fn list(&self, req: &ListRequest) -> Result<ListPage>;
    /// Deletes `name`; [`crate::ErrorKind::NotFound`] if absent.
    async fn delete(&self, name: &str, metadata: &Metadata) -> Result<()>;
    /// Facts about `name`; [`crate::ErrorKind::NotFound`] if absent.
    async fn stat(&self, name: &str, metadata: &Metadata) -> Result<FileMeta>;
}

impl Contract for dyn FileStore {
    const KIND: Kind = Kind::File;
    fn upcast(this: Arc<Self>) -> Arc<dyn Component> {
        this
    }
}
