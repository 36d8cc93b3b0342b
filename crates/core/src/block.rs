//! The block table: every building block declared once.
//!
//! Everything that differs by building block and is not its contract — the Layotto config
//! section, the Dapr component type prefix, the name used in error messages and health labels,
//! the capabilities the runtime derives — is read from [`Kind::info`]. Adding a block is one
//! variant here, one row in [`BLOCKS`] and its contract module (which implements
//! [`crate::Contract`] for its trait object).

use std::fmt;

/// A building block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `hellos`: the hello-world demo service.
    Hello,
    /// `state`: key/value state stores.
    State,
    /// `lock`: distributed locks.
    Lock,
    /// `sequencer`: distributed unique, increasing ids.
    Sequencer,
    /// `config_store`: configuration stores.
    Configuration,
    /// `pub_subs`: publish/subscribe brokers.
    PubSub,
    /// `secret_store`: secret stores.
    Secret,
    /// `file`: file / object storage.
    File,
    /// `bindings`: output bindings.
    Binding,
}

/// The facts of one building block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block.
    pub kind: Kind,
    /// Its section in Layotto's `grpc_config`, e.g. `pub_subs` (`mosn/layotto:pkg/runtime/config.go`).
    pub section: &'static str,
    /// The prefix of a Dapr `Component`'s `spec.type`, e.g. `pubsub` in `pubsub.redis`
    /// (docs.dapr.io "Component specs"). Blocks Dapr lacks use Layotto's name (`sequencer`,
    /// `file`, `hellos`), which is also how the metadata API reports their types.
    pub dapr_prefix: &'static str,
    /// Where the block stands among the types a Dapr `Component` resource may declare (the
    /// order Dapr's docs list them, Layotto's own blocks last; used to list them in messages);
    /// `None` when a resource may not declare it.
    pub dapr_rank: Option<u8>,
    /// The block's name in messages and health labels' error texts, e.g. `pubsub`.
    pub api: &'static str,
    /// Capabilities every component of the block has, in Dapr's vocabulary, reported by the
    /// metadata API beside the component's own [`crate::Feature`]s (Dapr derives
    /// `OUTPUT_BINDING` from the component's kind; `dapr/dapr:pkg/runtime/meta`).
    pub implied_capabilities: &'static [&'static str],
}

/// Every block, in the order components are sorted in a loaded configuration.
pub const BLOCKS: [BlockInfo; 9] = [
    row(Kind::Hello, "hellos", "hellos", None, "hello", &[]),
    row(Kind::State, "state", "state", Some(0), "state", &[]),
    row(Kind::Lock, "lock", "lock", Some(2), "lock", &[]),
    row(
        Kind::Sequencer,
        "sequencer",
        "sequencer",
        Some(6),
        "sequencer",
        &[],
    ),
    row(
        Kind::Configuration,
        "config_store",
        "configuration",
        Some(3),
        "configuration",
        &[],
    ),
    row(Kind::PubSub, "pub_subs", "pubsub", Some(1), "pubsub", &[]),
    row(
        Kind::Secret,
        "secret_store",
        "secretstores",
        Some(4),
        "secret",
        &[],
    ),
    row(Kind::File, "file", "file", Some(7), "file", &[]),
    row(
        Kind::Binding,
        "bindings",
        "bindings",
        Some(5),
        "binding",
        &["OUTPUT_BINDING"],
    ),
];

const fn row(
    kind: Kind,
    section: &'static str,
    dapr_prefix: &'static str,
    dapr_rank: Option<u8>,
    api: &'static str,
    implied_capabilities: &'static [&'static str],
) -> BlockInfo {
    BlockInfo {
        kind,
        section,
        dapr_prefix,
        dapr_rank,
        api,
        implied_capabilities,
    }
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 9] = {
        let mut all = [Kind::Hello; 9];
        let mut i = 0;
        while i < BLOCKS.len() {
            all[i] = BLOCKS[i].kind;
            i += 1;
        }
        all
    };

    /// This block's row of [`BLOCKS`].
    pub fn info(self) -> &'static BlockInfo {
        // The table lists the variants in declaration order (checked by a unit test).
        &BLOCKS[self as usize]
    }

    /// The `grpc_config` section holding components of this kind, e.g. `"pub_subs"`.
    pub fn section(self) -> &'static str {
        self.info().section
    }

    /// The block's name in messages, e.g. `"pubsub"`.
    pub fn api(self) -> &'static str {
        self.info().api
    }

    /// The kind whose Layotto section is `section`, if any.
    pub fn from_section(section: &str) -> Option<Kind> {
        BLOCKS.iter().find(|b| b.section == section).map(|b| b.kind)
    }

    /// The kind a Dapr resource's type prefix (`state`, `pubsub`, `secretstores`...) selects.
    pub fn from_dapr_prefix(prefix: &str) -> Option<Kind> {
        BLOCKS
            .iter()
            .find(|b| b.dapr_rank.is_some() && b.dapr_prefix == prefix)
            .map(|b| b.kind)
    }

    /// The Dapr type prefixes a resource may use, in Dapr's order (`state`, `pubsub`, `lock`,
    /// `configuration`, `secretstores`, `bindings`, then Layotto's `sequencer`, `file`).
    pub fn dapr_prefixes() -> Vec<&'static str> {
        let mut ranked: Vec<(u8, &'static str)> = BLOCKS
            .iter()
            .filter_map(|b| b.dapr_rank.map(|r| (r, b.dapr_prefix)))
            .collect();
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, p)| p).collect()
    }

    /// A component type as a Dapr resource spells it: `<prefix>.<type>`, e.g. `state.redis`.
    pub fn dapr_type(self, type_: &str) -> String {
        format!("{}.{type_}", self.info().dapr_prefix)
    }
}

impl fmt::Display for Kind {
    /// Writes the Layotto section name, e.g. `config_store`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.section())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order_and_names_are_unique() {
        for (i, b) in BLOCKS.iter().enumerate() {
            assert_eq!(b.kind as usize, i, "{:?} out of order", b.kind);
            assert_eq!(b.kind.info(), b);
            assert_eq!(Kind::from_section(b.section), Some(b.kind));
        }
        assert_eq!(Kind::from_dapr_prefix("secretstores"), Some(Kind::Secret));
        assert_eq!(Kind::from_dapr_prefix("hellos"), None);
        assert_eq!(
            Kind::dapr_prefixes(),
            [
                "state",
                "pubsub",
                "lock",
                "configuration",
                "secretstores",
                "bindings",
                "sequencer",
                "file"
            ]
        );
        assert_eq!(Kind::PubSub.dapr_type("redis"), "pubsub.redis");
        assert_eq!(Kind::Configuration.to_string(), "config_store");
    }
}
