//! File stores.

use layotto_core::file::{ByteStream, FileMeta, FileStore, ListPage, ListRequest};
use layotto_core::{Error, Metadata, Result};

use crate::Runtime;
use crate::call::Target;

impl Runtime {
    fn file_target<'a>(&'a self, store: &'a str, name: &str) -> Result<Target<'a, dyn FileStore>> {
        let f = self.components.target::<dyn FileStore>(store)?;
        if name.is_empty() {
            return Err(Error::empty_field("name"));
        }
        Ok(f)
    }

    /// Streams file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn get_file(
        &self,
        store: &str,
        name: &str,
        metadata: &Metadata,
    ) -> Result<ByteStream> {
        let f = self.file_target(store, name)?;
        f.run("get", || f.component.get(name, metadata)).await
    }

    /// Writes file `name` of `store` from `data`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, component failure.
    pub async fn put_file(
        &self,
        store: &str,
        name: &str,
        data: ByteStream,
        metadata: &Metadata,
    ) -> Result<()> {
        let f = self.file_target(store, name)?;
        // The data stream is read once: never sent again.
        f.run_once("put", f.component.put(name, data, metadata))
            .await
    }

    /// Lists one page of `store`.
    ///
    /// # Errors
    /// Unknown store, refused directory, component failure.
    pub async fn list_files(&self, store: &str, req: &ListRequest) -> Result<ListPage> {
        let f = self.components.target::<dyn FileStore>(store)?;
        f.run("list", || f.component.list(req)).await
    }

    /// Deletes file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn delete_file(&self, store: &str, name: &str, metadata: &Metadata) -> Result<()> {
        let f = self.file_target(store, name)?;
        f.run("delete", || f.component.delete(name, metadata)).await
    }

    /// Facts about file `name` of `store`.
    ///
    /// # Errors
    /// Unknown store, empty or refused name, not found.
    pub async fn file_meta(
        &self,
        store: &str,
        name: &str,
        metadata: &Metadata,
    ) -> Result<FileMeta> {
        let f = self.file_target(store, name)?;
        f.run("stat", || f.component.stat(name, metadata)).await
    }
}
