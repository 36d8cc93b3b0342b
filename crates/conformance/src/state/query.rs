//! The `QUERY_API` case: a query over JSON values stored under a prefix of their own.

use bytes::Bytes;
use layotto_core::Metadata;
use layotto_core::query::Query;
use layotto_core::state::{SetRequest, StateStore};

use crate::unique;

/// Six JSON documents under a fresh prefix (plus one outside it and one that is no JSON):
/// EQ, IN, NEQ, numeric GT/LTE (10 > 9, as numbers), AND/OR, sort on a nested field both
/// ways with the key breaking ties, and paging by limit and token give exactly the expected
/// keys in order; each result carries the stored value and its ETag.
pub async fn query(store: &dyn StateStore) {
    let case = "state::query";
    let prefix = format!("{}||", unique("q"));
    let docs = [
        ("a", r#"{"org": "dev", "n": 10, "person": {"id": 3}}"#),
        ("b", r#"{"org": "dev", "n": 9, "person": {"id": 1}}"#),
        ("c", r#"{"org": "ops", "n": 30, "person": {"id": 2}}"#),
        ("d", r#"{"org": "ops", "n": 2, "person": {"id": 2}}"#),
        ("e", r#"{"org": "qa", "n": 100}"#),
        ("f", r#"{"org": "dev", "n": "10"}"#),
    ];
    let json = Metadata::from([("contentType".to_owned(), "application/json".to_owned())]);
    for (k, v) in docs {
        let req = SetRequest {
            key: format!("{prefix}{k}"),
            value: Bytes::from(v),
            metadata: json.clone(),
            ..Default::default()
        };
        store
            .set(req)
            .await
            .unwrap_or_else(|e| panic!("{case}: set {k}: {e}"));
    }
    for (key, value) in [
        (
            format!("other{prefix}a"),
            r#"{"org": "dev", "n": 1}"#.as_bytes(),
        ),
        (format!("{prefix}raw"), b"\x00\x01 not json".as_slice()),
    ] {
        let req = SetRequest {
            key,
            value: Bytes::copy_from_slice(value),
            ..Default::default()
        };
        store
            .set(req)
            .await
            .unwrap_or_else(|e| panic!("{case}: set outside: {e}"));
    }
    let run = |body: &'static str| {
        let prefix = prefix.clone();
        async move {
            let mut q =
                Query::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{case}: {body}: {e}"));
            q.key_prefix.clone_from(&prefix);
            let r = store
                .query(&q)
                .await
                .unwrap_or_else(|e| panic!("{case}: {body}: {e}"));
            let keys: Vec<String> = r
                .results
                .iter()
                .map(|i| i.key.strip_prefix(&prefix).unwrap_or(&i.key).to_owned())
                .collect();
            (keys, r)
        }
    };
    let keys = |(k, _): (Vec<String>, _)| k;
    assert_eq!(
        keys(run(r#"{"filter": {"EQ": {"org": "dev"}}, "sort": [{"key": "n"}]}"#).await),
        ["b", "a", "f"],
        "{case}: EQ, sorted by n (numbers before strings)"
    );
    assert_eq!(
        keys(run(r#"{"filter": {"IN": {"org": ["ops", "qa"]}}}"#).await),
        ["c", "d", "e"],
        "{case}: IN, in key order"
    );
    assert_eq!(
        keys(run(r#"{"filter": {"NEQ": {"org": "dev"}}}"#).await),
        ["c", "d", "e"],
        "{case}: NEQ"
    );
    assert_eq!(
        keys(run(r#"{"filter": {"GT": {"n": 9}}}"#).await),
        ["a", "c", "e"],
        "{case}: GT compares numbers as numbers and skips the string \"10\""
    );
    assert_eq!(
        keys(run(r#"{"filter": {"OR": [{"LTE": {"n": 2}}, {"AND": [{"EQ": {"org": "dev"}}, {"GTE": {"n": 10}}]}]}}"#).await),
        ["a", "d"],
        "{case}: OR of LTE and AND"
    );
    assert_eq!(
        keys(
            run(r#"{"filter": {"EQ": {"person.id": 2}}, "sort": [{"key": "n", "order": "DESC"}]}"#)
                .await
        ),
        ["c", "d"],
        "{case}: a nested field, sorted descending"
    );
    assert_eq!(
        keys(run(r#"{"sort": [{"key": "person.id", "order": "DESC"}]}"#).await),
        ["a", "c", "d", "b", "e", "f"],
        "{case}: sort on a nested field, ties by key, missing last when descending"
    );
    let (first, page) = run(r#"{"sort": [{"key": "n"}], "page": {"limit": 4}}"#).await;
    assert_eq!(first, ["d", "b", "a", "c"], "{case}: first page");
    assert_eq!(page.token, "4", "{case}: the next page's token");
    let (second, page) =
        run(r#"{"sort": [{"key": "n"}], "page": {"limit": 4, "token": "4"}}"#).await;
    assert_eq!(second, ["e", "f"], "{case}: second page");
    assert_eq!(page.token, "6", "{case}: token after the last page");
    let (_, all) = run(r#"{"filter": {"EQ": {"org": "qa"}}}"#).await;
    let item = &all.results[0];
    let doc: serde_json::Value =
        serde_json::from_slice(&item.data).unwrap_or_else(|e| panic!("{case}: data is JSON: {e}"));
    assert_eq!(
        doc,
        serde_json::json!({"org": "qa", "n": 100}),
        "{case}: the value"
    );
    let stored = store
        .get(&item.key, &Metadata::new())
        .await
        .unwrap_or_else(|e| panic!("{case}: get: {e}"))
        .unwrap_or_else(|| panic!("{case}: the queried item exists"));
    assert_eq!(item.etag, stored.etag, "{case}: the item's ETag");
    assert!(all.token.is_empty(), "{case}: no token without a limit");
}
