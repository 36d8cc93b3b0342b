//! Layotto's references between components (`config_ref_example.json`): `secret_ref` and
//! `component_ref`.

use super::Walker;
use crate::node::{Node, child, index, json_string};
use crate::{ComponentRef, Kind, SecretRef};

impl Walker {
    /// Reads a Layotto `secret_ref`: a list of `{store_name, key, sub_key, inject_as}`. The
    /// secret `key` of store `store_name` is read before the component is built; its entry
    /// `sub_key` (default: `key`) becomes metadata `inject_as` (default: `sub_key`).
    pub(super) fn secret_refs(
        &mut self,
        node: &Node,
        path: &str,
        out: &mut Vec<SecretRef>,
    ) -> bool {
        let Node::Array(items) = node else {
            self.problem(
                path,
                format!(
                    "expected a list of {{\"store_name\", \"key\", \"sub_key\", \"inject_as\"}}, found {}",
                    node.describe()
                ),
            );
            return false;
        };
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.strict_object(item, &item_path, "a secret reference") else {
                ok = false;
                continue;
            };
            let mut text = |w: &mut Self, key: &str, required: bool| -> Option<String> {
                match fields.get_ci(key) {
                    Some((_, Node::String(v))) if !v.is_empty() => Some(v.clone()),
                    None | Some((_, Node::Null)) if !required => None,
                    Some((_, Node::String(_))) if !required => None,
                    other => {
                        w.problem(
                            &child(&item_path, key),
                            format!(
                                "expected a non-empty string, found {}",
                                other.map_or("nothing".to_owned(), |(_, n)| n.to_compact_json())
                            ),
                        );
                        ok = false;
                        None
                    }
                }
            };
            let store = text(self, "store_name", true);
            let key = text(self, "key", true);
            let sub_key = text(self, "sub_key", false);
            let inject_as = text(self, "inject_as", false);
            for &(k, _) in &fields.entries {
                if !["store_name", "key", "sub_key", "inject_as"]
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(k))
                {
                    self.problem(
                        &child(&item_path, k),
                        format!(
                            "unknown key {} in a secret reference; known keys: store_name, key, sub_key, inject_as",
                            json_string(k)
                        ),
                    );
                    ok = false;
                }
            }
            if let (Some(store), Some(key)) = (store, key) {
                let sub_key = sub_key.unwrap_or_else(|| key.clone());
                out.push(SecretRef {
                    metadata_key: inject_as.unwrap_or_else(|| sub_key.clone()),
                    secret_name: key,
                    secret_key: sub_key,
                    store: Some(store),
                });
            }
        }
        ok
    }

    /// Reads a Layotto `component_ref`: `{"config_store": name, "secret_store": name}`.
    pub(super) fn component_refs(
        &mut self,
        node: &Node,
        path: &str,
        out: &mut Vec<ComponentRef>,
    ) -> bool {
        let Some(fields) = self.strict_object(node, path, "component references") else {
            return false;
        };
        let mut ok = true;
        for &(key, value) in &fields.entries {
            let ref_path = child(path, key);
            let kind = match key {
                "config_store" => Kind::Configuration,
                "secret_store" => Kind::Secret,
                other => {
                    self.problem(
                        &ref_path,
                        format!(
                            "unknown component reference {}; known: config_store, secret_store",
                            json_string(other)
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            match value {
                Node::String(name) if !name.is_empty() => out.push(ComponentRef {
                    kind,
                    name: name.clone(),
                    path: ref_path,
                }),
                other => {
                    self.problem(
                        &ref_path,
                        format!("expected a component name, found {}", other.describe()),
                    );
                    ok = false;
                }
            }
        }
        ok
    }
}
