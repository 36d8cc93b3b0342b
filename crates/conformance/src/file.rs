//! Suite of the [`FileStore`] contract: put/get round trips (many chunks, binary, empty),
//! overwrite, all-or-nothing writes, stat, paged listing, delete, missing files and names that
//! escape the store root.
//!
//! Names are `/`-separated and relative to the store root; listing reports names relative to
//! the root too. Each case works under its own unique directory, so cases can share a store.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use layotto_core::file::{ByteStream, FileStore, ListPage, ListRequest};
use layotto_core::{Error, ErrorKind, Feature, Metadata, Result};

use crate::run::SuiteRun;
use crate::unique;

/// The features this suite has cases for: none (Dapr defines no file store features); a
/// component claiming any feature fails the suite.
pub const FEATURES: &[Feature] = &[];

/// Runs every case against a fresh store from `factory`; prints each skipped case.
///
/// # Panics
/// When a case fails (its message, then the run's summary), or when the component claims a
/// feature ([`FEATURES`] is empty).
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn FileStore>>,
{
    let mut run = SuiteRun::start("file", factory().await.features(), FEATURES);
    let f = &factory;
    run.case("file::round_trip_many_chunks", async {
        round_trip_many_chunks(&*f().await).await;
    })
    .await;
    run.case("file::binary_data", async {
        binary_data(&*f().await).await;
    })
    .await;
    run.case("file::empty_file", async {
        empty_file(&*f().await).await;
    })
    .await;
    run.case("file::overwrite", async {
        overwrite(&*f().await).await;
    })
    .await;
    run.case("file::failed_put_leaves_nothing", async {
        failed_put_leaves_nothing(&*f().await).await;
    })
    .await;
    run.case("file::stat", async { stat(&*f().await).await })
        .await;
    run.case("file::list_paging", async {
        list_paging(&*f().await).await;
    })
    .await;
    run.case("file::delete", async { delete(&*f().await).await })
        .await;
    run.case("file::missing_file", async {
        missing_file(&*f().await).await;
    })
    .await;
    run.case("file::escaping_names_refused", async {
        escaping_names_refused(&*f().await).await;
    })
    .await;
    run.finish();
}

/// A stream of `chunks`.
fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// `data` cut at `cuts` (byte offsets, increasing), one chunk per piece.
fn chunked(data: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.min(data.len());
        out.push(data.slice(start..c));
        start = c;
    }
    out
}

/// `len` bytes of a simple pseudo-random sequence (every byte value occurs).
fn pseudo_random(len: usize, seed: u32) -> Bytes {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn put(store: &dyn FileStore, name: &str, chunks: Vec<Bytes>, case: &str) {
    store
        .put(name, stream_of(chunks), &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: put '{name}' failed: {e}"));
}

async fn read(store: &dyn FileStore, name: &str) -> Result<Bytes> {
    let mut s = store.get(name, &Metadata::new()).await?;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.into())
}

async fn read_ok(store: &dyn FileStore, name: &str, case: &str) -> Bytes {
    read(store, name)
        .await
        .unwrap_or_else(|e| panic!("{case}: get '{name}' failed: {e}"))
}

fn assert_same(got: &Bytes, want: &Bytes, case: &str, what: &str) {
    if got != want {
        let at = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        panic!(
            "{case}: {what}: {} bytes read back, {} written; first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

fn expect_kind<T: std::fmt::Debug>(r: Result<T>, kinds: &[ErrorKind], case: &str, what: &str) {
    match r {
        Ok(v) => panic!("{case}: {what} succeeded ({v:?}), expected one of {kinds:?}"),
        Err(e) => assert!(
            kinds.contains(&e.kind),
            "{case}: {what} failed with {e:?}, expected one of {kinds:?}"
        ),
    }
}

async fn list(store: &dyn FileStore, directory: &str, page_size: u32, marker: &str) -> ListPage {
    let req = ListRequest {
        directory: directory.to_owned(),
        page_size,
        marker: marker.to_owned(),
        metadata: Metadata::new(),
    };
    store
        .list(&req)
        .await
        .unwrap_or_else(|e| panic!("list of '{directory}' after '{marker}' failed: {e}"))
}

/// Every name under `directory`, following the pages of `page_size`.
async fn list_all(
    store: &dyn FileStore,
    directory: &str,
    page_size: u32,
    case: &str,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut marker = String::new();
    for _ in 0..1000 {
        let page = list(store, directory, page_size, &marker).await;
        names.extend(page.files.into_iter().map(|f| f.name));
        if !page.is_truncated {
            return names;
        }
        assert!(
            page.marker != marker,
            "{case}: a truncated page of '{directory}' repeats marker '{marker}'"
        );
        marker = page.marker;
    }
    panic!("{case}: listing '{directory}' did not end after 1000 pages");
}

/// 300 KiB put in uneven chunks (1 byte, 7 bytes, one over 64 KiB, an empty chunk, the rest)
/// reads back identical, however the store chunks its reply.
pub async fn round_trip_many_chunks(store: &dyn FileStore) {
    let case = "file::round_trip_many_chunks";
    let name = format!("{}/data.bin", unique("file-chunks"));
    let data = pseudo_random(300 * 1024, 7);
    let chunks = chunked(
        &data,
        &[1, 8, 8 + 65 * 1024 + 3, 8 + 65 * 1024 + 3, 200 * 1024],
    );
    assert!(chunks.len() >= 5, "{case}: test data is chunked");
    put(store, &name, chunks, case).await;
    assert_same(&read_ok(store, &name, case).await, &data, case, "300 KiB");
}

/// Every byte value, including NUL and invalid UTF-8 sequences, round-trips.
pub async fn binary_data(store: &dyn FileStore) {
    let case = "file::binary_data";
    let name = format!("{}/all-bytes", unique("file-binary"));
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend((0..=255u8).rev());
    v.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28, b'\r', b'\n']);
    let data = Bytes::from(v);
    put(store, &name, chunked(&data, &[100]), case).await;
    assert_same(&read_ok(store, &name, case).await, &data, case, "binary");
}

/// An empty stream makes an empty file: it exists, reads back empty, has size 0.
pub async fn empty_file(store: &dyn FileStore) {
    let case = "file::empty_file";
    let name = format!("{}/empty", unique("file-empty"));
    put(store, &name, Vec::new(), case).await;
    assert!(
        read_ok(store, &name, case).await.is_empty(),
        "{case}: content"
    );
    let meta = store
        .stat(&name, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: stat failed: {e}"));
    assert_eq!(meta.size, 0, "{case}: size");
}

/// A second put replaces the whole content, also when it is shorter.
pub async fn overwrite(store: &dyn FileStore) {
    let case = "file::overwrite";
    let name = format!("{}/f.txt", unique("file-overwrite"));
    put(
        store,
        &name,
        vec![Bytes::from("a long first version")],
        case,
    )
    .await;
    put(store, &name, vec![Bytes::from("short")], case).await;
    assert_eq!(
        read_ok(store, &name, case).await,
        Bytes::from("short"),
        "{case}: content after overwrite"
    );
}

/// A put whose stream fails midway fails with the stream's error and leaves no file behind
/// (and an existing file unchanged).
pub async fn failed_put_leaves_nothing(store: &dyn FileStore) {
    let case = "file::failed_put_leaves_nothing";
    let dir = unique("file-failed-put");
    let broken = || -> ByteStream {
        futures::stream::iter(vec![
            Ok(Bytes::from("first chunk")),
            Err(Error::internal("conformance: the client went away")),
        ])
        .boxed()
    };
    let fresh = format!("{dir}/fresh");
    let r = store.put(&fresh, broken(), &Metadata::new()).await;
    assert!(r.is_err(), "{case}: put of a failing stream succeeded");
    expect_kind(
        read(store, &fresh).await,
        &[ErrorKind::NotFound],
        case,
        "get after a failed put",
    );
    let existing = format!("{dir}/existing");
    put(store, &existing, vec![Bytes::from("old")], case).await;
    let r = store.put(&existing, broken(), &Metadata::new()).await;
    assert!(
        r.is_err(),
        "{case}: overwrite with a failing stream succeeded"
    );
    assert_eq!(
        read_ok(store, &existing, case).await,
        Bytes::from("old"),
        "{case}: existing file changed by a failed put"
    );
    let names = list_all(store, &dir, 0, case).await;
    assert_eq!(names, [existing], "{case}: files listed after failed puts");
}

/// `stat` reports the size in bytes and a modification time.
pub async fn stat(store: &dyn FileStore) {
    let case = "file::stat";
    let name = format!("{}/sized", unique("file-stat"));
    let data = pseudo_random(12_345, 3);
    put(store, &name, chunked(&data, &[4096]), case).await;
    let meta = store
        .stat(&name, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: stat failed: {e}"));
    assert_eq!(meta.size, 12_345, "{case}: size");
    assert!(
        !meta.last_modified.is_empty(),
        "{case}: no modification time"
    );
}

/// Five files listed two at a time: three pages, the first two truncated, names sorted,
/// relative to the root, each once; a sibling directory sharing the name's prefix is not
/// listed; page size 0 (the store default) lists all five at once; an unknown directory lists
/// empty.
pub async fn list_paging(store: &dyn FileStore) {
    let case = "file::list_paging";
    let dir = unique("file-list");
    let names: Vec<String> = (0..5).map(|i| format!("{dir}/f{i}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        put(store, n, vec![Bytes::from(vec![b'x'; i + 1])], case).await;
    }
    put(
        store,
        &format!("{dir}-sibling/g.txt"),
        vec![Bytes::from("g")],
        case,
    )
    .await;
    let mut marker = String::new();
    let mut seen = Vec::new();
    for (page_no, (want_len, want_truncated)) in
        [(2, true), (2, true), (1, false)].into_iter().enumerate()
    {
        let page = list(store, &dir, 2, &marker).await;
        let got: Vec<&str> = page.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            (got.len(), page.is_truncated),
            (want_len, want_truncated),
            "{case}: page {page_no} after '{marker}': {got:?}, truncated {}",
            page.is_truncated
        );
        for f in &page.files {
            let i = names
                .iter()
                .position(|n| *n == f.name)
                .unwrap_or_else(|| panic!("{case}: listed '{}', not one of {names:?}", f.name));
            assert_eq!(
                f.size,
                i64::try_from(i + 1).unwrap_or(0),
                "{case}: size of '{}'",
                f.name
            );
        }
        seen.extend(page.files.into_iter().map(|f| f.name));
        marker = page.marker;
    }
    assert_eq!(seen, names, "{case}: all pages together, in order");
    let page = list(store, &dir, 0, "").await;
    let all: Vec<String> = page.files.into_iter().map(|f| f.name).collect();
    assert_eq!(all, names, "{case}: page size 0 (store default)");
    assert!(!page.is_truncated, "{case}: page size 0 truncated");
    let none = list(store, &unique("file-list-missing"), 0, "").await;
    assert!(
        none.files.is_empty(),
        "{case}: unknown directory listed {none:?}"
    );
}

/// After `delete` the file reads, stats and deletes as `NotFound` and is no longer listed; its
/// neighbour stays.
pub async fn delete(store: &dyn FileStore) {
    let case = "file::delete";
    let dir = unique("file-delete");
    let (gone, kept) = (format!("{dir}/gone"), format!("{dir}/kept"));
    put(store, &gone, vec![Bytes::from("x")], case).await;
    put(store, &kept, vec![Bytes::from("y")], case).await;
    store
        .delete(&gone, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: delete failed: {e}"));
    let nf = &[ErrorKind::NotFound];
    expect_kind(read(store, &gone).await, nf, case, "get after delete");
    expect_kind(
        store.stat(&gone, &Metadata::new()).await,
        nf,
        case,
        "stat after delete",
    );
    expect_kind(
        store.delete(&gone, &Metadata::new()).await,
        nf,
        case,
        "second delete",
    );
    assert_eq!(
        list_all(store, &dir, 0, case).await,
        std::slice::from_ref(&kept),
        "{case}: listed"
    );
    assert_eq!(
        read_ok(store, &kept, case).await,
        Bytes::from("y"),
        "{case}: neighbour"
    );
}

/// A file never written is `NotFound` for get, stat and delete.
pub async fn missing_file(store: &dyn FileStore) {
    let case = "file::missing_file";
    let name = format!("{}/nothing", unique("file-missing"));
    let nf = &[ErrorKind::NotFound];
    expect_kind(read(store, &name).await, nf, case, "get");
    expect_kind(store.stat(&name, &Metadata::new()).await, nf, case, "stat");
    expect_kind(
        store.delete(&name, &Metadata::new()).await,
        nf,
        case,
        "delete",
    );
}

/// Names that leave the store root (`..` components, absolute paths) are refused with
/// `InvalidArgument` or `PermissionDenied` by put, get, stat, delete and list; a refused put
/// writes nothing the store lists.
pub async fn escaping_names_refused(store: &dyn FileStore) {
    let case = "file::escaping_names_refused";
    let dir = unique("file-escape");
    let inside = format!("{dir}/inside");
    put(store, &inside, vec![Bytes::from("in")], case).await;
    let refused = &[ErrorKind::InvalidArgument, ErrorKind::PermissionDenied];
    let md = Metadata::new();
    for name in [
        format!("../{}", unique("escaped")),
        format!("{dir}/../../{}", unique("escaped")),
        format!("/tmp/{}", unique("escaped")),
    ] {
        let what = |op: &str| format!("{op} '{name}'");
        let r = store
            .put(&name, stream_of(vec![Bytes::from("out")]), &md)
            .await;
        expect_kind(r, refused, case, &what("put"));
        expect_kind(read(store, &name).await, refused, case, &what("get"));
        expect_kind(store.stat(&name, &md).await, refused, case, &what("stat"));
        expect_kind(
            store.delete(&name, &md).await,
            refused,
            case,
            &what("delete"),
        );
    }
    for probe in ["../../../../etc/passwd", "/etc/passwd"] {
        expect_kind(
            read(store, probe).await,
            refused,
            case,
            &format!("get '{probe}'"),
        );
    }
    let req = ListRequest {
        directory: "..".to_owned(),
        ..Default::default()
    };
    expect_kind(store.list(&req).await, refused, case, "list of '..'");
    assert_eq!(
        list_all(store, &dir, 0, case).await,
        [inside],
        "{case}: files listed after refused puts"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn chunking_covers_the_data() {
        let d = pseudo_random(1000, 1);
        let parts = chunked(&d, &[1, 8, 8, 500]);
        assert_eq!(
            parts.iter().map(Bytes::len).collect::<Vec<_>>(),
            [1, 7, 0, 492, 500]
        );
        assert_eq!(parts.concat(), d.to_vec());
        let all: HashSet<u8> = pseudo_random(4096, 7).iter().copied().collect();
        assert!(all.len() > 250, "varied bytes: {}", all.len());
    }
}
