//! Dapr's state query language (docs.dapr.io "State query API reference";
//! components-contrib `state/query`): a filter tree over fields of JSON values, a sort and a
//! page, parsed from the JSON body of `QueryStateAlpha1` / `POST /v1.0-alpha1/state/<store>/query`:
//!
//! ```json
//! {"filter": {"AND": [{"EQ": {"person.org": "Dev Ops"}},
//!                     {"OR": [{"IN": {"state": ["CA", "WA"]}}, {"GT": {"age": 30}}]}]},
//!  "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
//!  "page": {"limit": 3, "token": "6"}}
//! ```
//!
//! A field is a dot-separated path into the value (`person.org`). Comparisons are typed here:
//! numbers compare as numbers and strings as strings, and a value of another type never
//! matches (daprd's PostgreSQL store compares the text of every field, so `GT 5` misses 10).
//! The page token is the offset of the next page, as daprd's stores use it.

use serde_json::Value;

use crate::error::{Error, Result};

/// One node of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `EQ`: the field equals the value.
    Eq(String, Value),
    /// `NEQ`: the field differs from the value (a missing field differs).
    Neq(String, Value),
    /// `GT`: the field is greater than the number.
    Gt(String, Value),
    /// `GTE`.
    Gte(String, Value),
    /// `LT`.
    Lt(String, Value),
    /// `LTE`.
    Lte(String, Value),
    /// `IN`: the field equals one of the values.
    In(String, Vec<Value>),
    /// `AND` of at least two filters.
    And(Vec<Filter>),
    /// `OR` of at least two filters.
    Or(Vec<Filter>),
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// The field.
    pub key: String,
    /// `order: DESC` (default `ASC`).
    pub descending: bool,
}

/// A parsed query, scoped by the runtime to its key layout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// The filter (`None`: every item).
    pub filter: Option<Filter>,
    /// Sort keys in order (empty: the store's order; stores add the key as the last one so
    /// pages are stable).
    pub sort: Vec<Sort>,
    /// `page.limit` (0: no limit).
    pub limit: u64,
    /// The offset `page.token` names (0 without a token).
    pub offset: u64,
    /// Only keys stored under this prefix are searched (the app's `<appid>||`, set by the
    /// runtime); results carry their stored keys.
    pub key_prefix: String,
}

/// One item of a query result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryItem {
    /// The stored key (the runtime strips its layout's prefix).
    pub key: String,
    /// The value: JSON text.
    pub data: bytes::Bytes,
    /// Its ETag, when the store has them.
    pub etag: Option<String>,
}

/// A page of query results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryResponse {
    /// The matching items of this page.
    pub results: Vec<QueryItem>,
    /// The token of the next page (empty without a limit).
    pub token: String,
}

impl Query {
    /// Parses a query body.
    ///
    /// # Errors
    /// Invalid argument naming what is wrong: no JSON object, an unknown top-level key or
    /// filter operator, a comparison with a string (`GT`/`GTE`/`LT`/`LTE` take numbers, as in
    /// daprd), an `IN` without values, an `AND`/`OR` of fewer than two filters, a sort without
    /// key or with an order other than `ASC`/`DESC`, a page limit or token that is no whole
    /// number.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("failed to parse JSON query body: {e}")))?;
        let Value::Object(top) = v else {
            return Err(Error::invalid("the query must be a JSON object"));
        };
        let mut q = Query::default();
        for (k, v) in &top {
            match k.as_str() {
                "filter" => {
                    if !matches!(v, Value::Object(m) if m.is_empty()) {
                        q.filter = Some(filter(v)?);
                    }
                }
                "sort" => q.sort = sort(v)?,
                "page" => {
                    let Value::Object(p) = v else {
                        return Err(Error::invalid("'page' must be an object"));
                    };
                    if let Some(l) = p.get("limit") {
                        q.limit = l.as_u64().ok_or_else(|| {
                            Error::invalid(format!("'page.limit' must be a whole number, got {l}"))
                        })?;
                    }
                    match p.get("token") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(t)) if t.is_empty() => {}
                        Some(Value::String(t)) => {
                            q.offset = t.parse().map_err(|_| {
                                Error::invalid(format!("page token '{t}' is not an offset"))
                            })?;
                        }
                        Some(other) => {
                            return Err(Error::invalid(format!(
                                "'page.token' must be a string, got {other}"
                            )));
                        }
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown query key '{other}' (expected filter, sort, page)"
                    )));
                }
            }
        }
        Ok(q)
    }
}

fn filter(v: &Value) -> Result<Filter> {
    let Value::Object(m) = v else {
        return Err(Error::invalid(format!(
            "a filter must be an object, got {v}"
        )));
    };
    let mut it = m.iter();
    let (Some((op, arg)), None) = (it.next(), it.next()) else {
        return Err(Error::invalid(format!(
            "a filter must have exactly one operator, got {v}"
        )));
    };
    let field = |arg: &Value| -> Result<(String, Value)> {
        let Value::Object(f) = arg else {
            return Err(Error::invalid(format!(
                "{op} takes {{field: value}}, got {arg}"
            )));
        };
        let mut it = f.iter();
        match (it.next(), it.next()) {
            (Some((k, v)), None) if !k.is_empty() => Ok((k.clone(), v.clone())),
            _ => Err(Error::invalid(format!(
                "{op} takes exactly one {{field: value}}, got {arg}"
            ))),
        }
    };
    let number = |(k, v): (String, Value)| -> Result<(String, Value)> {
        if v.is_number() {
            Ok((k, v))
        } else {
            Err(Error::invalid(format!(
                "{op} compares numbers; '{k}' is given {v}"
            )))
        }
    };
    let list = |arg: &Value| -> Result<Vec<Filter>> {
        match arg {
            Value::Array(items) if items.len() >= 2 => items.iter().map(filter).collect(),
            _ => Err(Error::invalid(format!(
                "{op} takes a list of at least two filters, got {arg}"
            ))),
        }
    };
    Ok(match op.as_str() {
        "EQ" => {
            let (k, v) = field(arg)?;
            Filter::Eq(k, v)
        }
        "NEQ" => {
            let (k, v) = field(arg)?;
            Filter::Neq(k, v)
        }
        "GT" => {
            let (k, v) = number(field(arg)?)?;
            Filter::Gt(k, v)
        }
        "GTE" => {
            let (k, v) = number(field(arg)?)?;
            Filter::Gte(k, v)
        }
        "LT" => {
            let (k, v) = number(field(arg)?)?;
            Filter::Lt(k, v)
        }
        "LTE" => {
            let (k, v) = number(field(arg)?)?;
            Filter::Lte(k, v)
        }
        "IN" => match field(arg)? {
            (k, Value::Array(values)) if !values.is_empty() => Filter::In(k, values),
            (k, _) => {
                return Err(Error::invalid(format!(
                    "empty IN operator for key \"{k}\" (IN takes a non-empty list)"
                )));
            }
        },
        "AND" => Filter::And(list(arg)?),
        "OR" => Filter::Or(list(arg)?),
        other => return Err(Error::invalid(format!("unsupported filter \"{other}\""))),
    })
}

fn sort(v: &Value) -> Result<Vec<Sort>> {
    let Value::Array(items) = v else {
        return Err(Error::invalid(format!("'sort' must be a list, got {v}")));
    };
    items
        .iter()
        .map(|s| {
            let key = s.get("key").and_then(Value::as_str).unwrap_or_default();
            if key.is_empty() {
                return Err(Error::invalid(format!("a sort needs a 'key', got {s}")));
            }
            let descending = match s.get("order").and_then(Value::as_str) {
                None | Some("" | "ASC") => false,
                Some("DESC") => true,
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "sort order '{other}' of '{key}' is neither ASC nor DESC"
                    )));
                }
            };
            Ok(Sort {
                key: key.to_owned(),
                descending,
            })
        })
        .collect()
}

/// The field at dot-separated `path` of `doc`; a numeric part indexes an array (as
/// PostgreSQL's `#>` does).
pub fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| match v {
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => v.get(part),
    })
}

/// Orders two field values for sorting: missing, then null, booleans, numbers (by value),
/// strings, arrays and objects (by their JSON text).
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None => 0,
            Some(Value::Null) => 1,
            Some(Value::Bool(_)) => 2,
            Some(Value::Number(_)) => 3,
            Some(Value::String(_)) => 4,
            Some(Value::Array(_)) => 5,
            Some(Value::Object(_)) => 6,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) if rank(a) == rank(b) => x.to_string().cmp(&y.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Whether two values are equal as the query language compares them (numbers by value).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Query {
    /// Runs the query over `items` (stored key, value, ETag) in memory, for stores that cannot
    /// run it themselves: keys outside [`Query::key_prefix`] and values that are no JSON are
    /// left out; the rest is filtered, sorted (sort keys, then the key) and paged.
    pub fn apply(&self, items: impl IntoIterator<Item = QueryItem>) -> QueryResponse {
        let mut found: Vec<(Value, QueryItem)> = items
            .into_iter()
            .filter(|i| i.key.starts_with(&self.key_prefix))
            .filter_map(|i| Some((serde_json::from_slice::<Value>(&i.data).ok()?, i)))
            .filter(|(doc, _)| self.filter.as_ref().is_none_or(|f| f.matches(doc)))
            .collect();
        found.sort_by(|(a, ia), (b, ib)| {
            self.sort
                .iter()
                .map(|s| {
                    let o = compare(field(a, &s.key), field(b, &s.key));
                    if s.descending { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| ia.key.cmp(&ib.key))
        });
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = match self.limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let results: Vec<QueryItem> = found
            .into_iter()
            .skip(skip)
            .take(take)
            .map(|(_, i)| i)
            .collect();
        QueryResponse {
            token: self.next_token(results.len()),
            results,
        }
    }

    /// The token of the page after one of `n` results: the next offset, when there is a
    /// limit (daprd's stores give one even after the last page).
    pub fn next_token(&self, n: usize) -> String {
        if self.limit == 0 {
            String::new()
        } else {
            (self.offset + u64::try_from(n).unwrap_or(u64::MAX)).to_string()
        }
    }
}

impl Filter {
    /// Whether `doc` (a JSON value) matches.
    pub fn matches(&self, doc: &Value) -> bool {
        let num = |k: &str, v: &Value, ok: fn(f64, f64) -> bool| match (
            field(doc, k).and_then(Value::as_f64),
            v.as_f64(),
        ) {
            (Some(a), Some(b)) => ok(a, b),
            _ => false,
        };
        match self {
            Self::Eq(k, v) => field(doc, k).is_some_and(|f| equal(f, v)),
            Self::Neq(k, v) => !field(doc, k).is_some_and(|f| equal(f, v)),
            Self::Gt(k, v) => num(k, v, |a, b| a > b),
            Self::Gte(k, v) => num(k, v, |a, b| a >= b),
            Self::Lt(k, v) => num(k, v, |a, b| a < b),
            Self::Lte(k, v) => num(k, v, |a, b| a <= b),
            Self::In(k, vs) => field(doc, k).is_some_and(|f| vs.iter().any(|v| equal(f, v))),
            Self::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Self::Or(fs) => fs.iter().any(|f| f.matches(doc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_daprs_query_language() {
        let q = Query::parse(
            br#"{"filter": {"AND": [{"EQ": {"person.org": "Dev"}},
                 {"OR": [{"IN": {"state": ["CA", "WA"]}}, {"GT": {"age": 30}}]}]},
                 "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
                 "page": {"limit": 3, "token": "6"}}"#,
        )
        .expect("valid");
        assert_eq!(q.limit, 3);
        assert_eq!(q.offset, 6);
        assert_eq!(
            q.sort,
            [
                Sort {
                    key: "state".into(),
                    descending: true
                },
                Sort {
                    key: "person.id".into(),
                    descending: false
                }
            ]
        );
        let doc = json!({"person": {"org": "Dev", "id": 1}, "state": "CA", "age": 20});
        let f = q.filter.expect("filter");
        assert!(f.matches(&doc));
        assert!(!f.matches(&json!({"person": {"org": "Ops"}, "state": "CA"})));
        assert!(f.matches(&json!({"person": {"org": "Dev"}, "state": "NY", "age": 31})));
        assert_eq!(Query::parse(b"{}").expect("empty"), Query::default());
        assert_eq!(
            Query::parse(br#"{"filter": {}}"#)
                .expect("no filter")
                .filter,
            None
        );
    }

    #[test]
    fn comparisons_are_typed() {
        let gt = Filter::Gt("n".into(), json!(5));
        assert!(gt.matches(&json!({"n": 10})), "10 > 5 as numbers");
        assert!(
            !gt.matches(&json!({"n": "10"})),
            "a string is not compared with a number"
        );
        assert!(Filter::Eq("n".into(), json!(1)).matches(&json!({"n": 1.0})));
        assert!(Filter::Neq("n".into(), json!(1)).matches(&json!({})));
        assert!(Filter::Eq("items.1".into(), json!("b")).matches(&json!({"items": ["a", "b"]})));
        use std::cmp::Ordering::*;
        assert_eq!(compare(Some(&json!(2)), Some(&json!(10))), Less);
        assert_eq!(compare(None, Some(&json!(null))), Less);
        assert_eq!(compare(Some(&json!("b")), Some(&json!("a"))), Greater);
    }

    #[test]
    fn bad_queries_are_named() {
        for (body, why) in [
            (&b"[]"[..], "must be a JSON object"),
            (br#"{"filters": {}}"#, "unknown query key 'filters'"),
            (
                br#"{"filter": {"LIKE": {"a": 1}}}"#,
                "unsupported filter \"LIKE\"",
            ),
            (br#"{"filter": {"GT": {"a": "x"}}}"#, "compares numbers"),
            (
                br#"{"filter": {"IN": {"a": []}}}"#,
                "empty IN operator for key \"a\"",
            ),
            (
                br#"{"filter": {"AND": [{"EQ": {"a": 1}}]}}"#,
                "at least two filters",
            ),
            (
                br#"{"filter": {"EQ": {"a": 1}, "NEQ": {"b": 2}}}"#,
                "exactly one operator",
            ),
            (
                br#"{"sort": [{"key": "a", "order": "UP"}]}"#,
                "neither ASC nor DESC",
            ),
            (
                br#"{"page": {"limit": -1}}"#,
                "'page.limit' must be a whole number",
            ),
            (
                br#"{"page": {"token": "x"}}"#,
                "page token 'x' is not an offset",
            ),
        ] {
            let e = Query::parse(body).expect_err(why);
            assert!(
                e.message.contains(why),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
    }
}
