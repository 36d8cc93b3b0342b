//! The query API on the v1 layout: Dapr's query language ([`layotto_core::query`]) as one
//! `SELECT` over the `jsonb` values, with the typed comparisons and order of
//! [`layotto_core::query::Query::apply`] (daprd compares the text of every field instead).
//! Only live JSON rows under the query's key prefix are searched (daprd searches every app's
//! rows, expired and binary ones included).

use layotto_core::query::{Filter, Query, Sort};
use serde_json::Value;

/// A parameter of the built statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// A text value.
    Text(String),
    /// A field path (`text[]`).
    Path(Vec<String>),
    /// A number (compared as `numeric`).
    Number(f64),
}

/// The statement and its parameters (`$1` is the key prefix).
#[derive(Debug, Default)]
pub(crate) struct Built {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Built {
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn path(&mut self, field: &str) -> String {
        let p = self.param(Param::Path(field.split('.').map(str::to_owned).collect()));
        format!("(value #> {p}::text[])")
    }

    fn json(&mut self, v: &Value) -> String {
        format!("{}::jsonb", self.param(Param::Text(v.to_string())))
    }

    fn filter(&mut self, f: &Filter) -> String {
        let cmp = |b: &mut Self, k: &str, v: &Value, op: &str| {
            let x = b.path(k);
            let n = b.param(Param::Number(v.as_f64().unwrap_or(f64::NAN)));
            format!(
                "(CASE WHEN jsonb_typeof({x}) = 'number' THEN {x}::numeric {op} {n}::numeric \
                 ELSE false END)"
            )
        };
        match f {
            Filter::Eq(k, v) => {
                let (x, j) = (self.path(k), self.json(v));
                format!("COALESCE({x} = {j}, false)")
            }
            Filter::Neq(k, v) => {
                let (x, j) = (self.path(k), self.json(v));
                format!("NOT COALESCE({x} = {j}, false)")
            }
            Filter::Gt(k, v) => cmp(self, k, v, ">"),
            Filter::Gte(k, v) => cmp(self, k, v, ">="),
            Filter::Lt(k, v) => cmp(self, k, v, "<"),
            Filter::Lte(k, v) => cmp(self, k, v, "<="),
            Filter::In(k, vs) => {
                let x = self.path(k);
                let any: Vec<String> = vs
                    .iter()
                    .map(|v| format!("{x} = {}", self.json(v)))
                    .collect();
                format!("COALESCE(({}), false)", any.join(" OR "))
            }
            Filter::And(fs) => {
                let parts: Vec<String> = fs.iter().map(|f| self.filter(f)).collect();
                format!("({})", parts.join(" AND "))
            }
            Filter::Or(fs) => {
                let parts: Vec<String> = fs.iter().map(|f| self.filter(f)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// The order of one sort key: by type (missing, null, boolean, number, string, array,
    /// object), then numbers by value, strings by code point, the rest by text.
    fn order(&mut self, s: &Sort) -> String {
        let x = self.path(&s.key);
        let dir = if s.descending { "DESC" } else { "ASC" };
        format!(
            "CASE jsonb_typeof({x}) WHEN 'null' THEN 1 WHEN 'boolean' THEN 2 WHEN 'number' THEN 3 \
             WHEN 'string' THEN 4 WHEN 'array' THEN 5 WHEN 'object' THEN 6 ELSE 0 END {dir}, \
             (CASE WHEN jsonb_typeof({x}) = 'number' THEN {x}::numeric END) {dir}, \
             (CASE WHEN jsonb_typeof({x}) = 'string' THEN {x} #>> '{{}}' END) COLLATE \"C\" {dir}, \
             {x}::text {dir}"
        )
    }
}

/// The `SELECT` of `q` over v1 table `table`: key, value text, ETag, one page.
pub(crate) fn build(table: &str, q: &Query) -> Built {
    let mut b = Built::default();
    let prefix = b.param(Param::Text(q.key_prefix.clone()));
    let mut sql = format!(
        "SELECT key, value::text, xmin::text FROM {table} WHERE starts_with(key, {prefix}) AND \
         NOT isbinary AND (expiredate IS NULL OR expiredate >= CURRENT_TIMESTAMP)"
    );
    if let Some(f) = &q.filter {
        let cond = b.filter(f);
        sql.push_str(" AND ");
        sql.push_str(&cond);
    }
    let mut order: Vec<String> = q.sort.iter().map(|s| b.order(s)).collect();
    order.push("key COLLATE \"C\" ASC".to_owned());
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    if q.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", q.limit));
    }
    if q.offset > 0 {
        sql.push_str(&format!(" OFFSET {}", q.offset));
    }
    b.sql = sql;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parameters_and_fields_are_paths() {
        let q = Query::parse(
            br#"{"filter": {"AND": [{"EQ": {"person.org": "x'; DROP TABLE t; --"}}, {"GT": {"n": 5}}]},
                 "sort": [{"key": "n", "order": "DESC"}], "page": {"limit": 2, "token": "4"}}"#,
        )
        .expect("query");
        let b = build("state", &q);
        assert!(!b.sql.contains("DROP"), "{}", b.sql);
        assert!(b.sql.ends_with(" LIMIT 2 OFFSET 4"), "{}", b.sql);
        assert_eq!(
            b.params[1],
            Param::Path(vec!["person".into(), "org".into()])
        );
        assert_eq!(b.params[2], Param::Text("\"x'; DROP TABLE t; --\"".into()));
        assert_eq!(b.params[4], Param::Number(5.0));
    }
}
