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
    /// Component types the peers have for this block that this project does not implement
    /// yet, with the peer that has each (`"Layotto"`, `"Dapr"`): configuring one is a clear
    /// "not supported yet" error, not an "unknown type". A Dapr resource's type is matched
    /// without its block prefix (`state.mongodb` as `mongodb`).
    pub peer_types: &'static [(&'static str, &'static str)],
    /// Component metadata keys the runtime itself reads for every component of the block
    /// (matched case-insensitively): `keyPrefix` (key layout) for state, lock and sequencer;
    /// `consumerID` (the default consumer group of subscriptions) for pub/sub.
    pub runtime_keys: &'static [&'static str],
}

/// Dapr's state stores not implemented here (docs.dapr.io "Supported state stores"), plus
/// Layotto's ZooKeeper store.
const STATE_PEERS: &[(&str, &str)] = &[
    ("zookeeper", "Layotto"),
    ("postgresql", "Dapr"),
    ("mysql", "Dapr"),
    ("mongodb", "Dapr"),
    ("etcd", "Dapr"),
    ("cassandra", "Dapr"),
    ("memcached", "Dapr"),
    ("sqlite", "Dapr"),
    ("sqlserver", "Dapr"),
    ("couchbase", "Dapr"),
    ("rethinkdb", "Dapr"),
    ("cockroachdb", "Dapr"),
    ("azure.cosmosdb", "Dapr"),
    ("azure.blobstorage", "Dapr"),
    ("azure.tablestorage", "Dapr"),
    ("aws.dynamodb", "Dapr"),
    ("gcp.firestore", "Dapr"),
    ("hazelcast", "Dapr"),
    ("jetstream", "Dapr"),
    ("oracledatabase", "Dapr"),
];

/// Dapr's pub/sub brokers not implemented here (docs.dapr.io "Supported pub/sub brokers").
const PUBSUB_PEERS: &[(&str, &str)] = &[
    ("kafka", "Dapr"),
    ("rabbitmq", "Dapr"),
    ("mqtt3", "Dapr"),
    ("mqtt", "Dapr"),
    ("jetstream", "Dapr"),
    ("pulsar", "Dapr"),
    ("rocketmq", "Dapr"),
    ("solace.amqp", "Dapr"),
    ("aws.snssqs", "Dapr"),
    ("azure.eventhubs", "Dapr"),
    ("azure.servicebus.topics", "Dapr"),
    ("azure.servicebus.queues", "Dapr"),
    ("gcp.pubsub", "Dapr"),
];

/// Dapr's bindings not implemented here (docs.dapr.io "Supported bindings").
const BINDING_PEERS: &[(&str, &str)] = &[
    ("kafka", "Dapr"),
    ("rabbitmq", "Dapr"),
    ("mqtt3", "Dapr"),
    ("postgresql", "Dapr"),
    ("postgres", "Dapr"),
    ("mysql", "Dapr"),
    ("redis", "Dapr"),
    ("localstorage", "Dapr"),
    ("smtp", "Dapr"),
    ("aws.s3", "Dapr"),
    ("kubernetes", "Dapr"),
    ("graphql", "Dapr"),
];

/// The runtime key of blocks with a key layout.
const KEY_PREFIX: &[&str] = &["keyPrefix"];

/// Every block, in the order components are sorted in a loaded configuration.
pub const BLOCKS: [BlockInfo; 9] = [
    BlockInfo {
        kind: Kind::Hello,
        section: "hellos",
        dapr_prefix: "hellos",
        dapr_rank: None,
        api: "hello",
        implied_capabilities: &[],
        peer_types: &[("hello-grpc-demo", "Layotto")],
        runtime_keys: &[],
    },
    BlockInfo {
        kind: Kind::State,
        section: "state",
        dapr_prefix: "state",
        dapr_rank: Some(0),
        api: "state",
        implied_capabilities: &[],
        peer_types: STATE_PEERS,
        runtime_keys: KEY_PREFIX,
    },
    BlockInfo {
        kind: Kind::Lock,
        section: "lock",
        dapr_prefix: "lock",
        dapr_rank: Some(2),
        api: "lock",
        implied_capabilities: &[],
        peer_types: &[
            ("etcd", "Layotto"),
            ("zookeeper", "Layotto"),
            ("mongo", "Layotto"),
            ("consul", "Layotto"),
        ],
        runtime_keys: KEY_PREFIX,
    },
    BlockInfo {
        kind: Kind::Sequencer,
        section: "sequencer",
        dapr_prefix: "sequencer",
        dapr_rank: Some(6),
        api: "sequencer",
        implied_capabilities: &[],
        peer_types: &[
            ("etcd", "Layotto"),
            ("zookeeper", "Layotto"),
            ("mongo", "Layotto"),
            ("mysql", "Layotto"),
            ("snowflake", "Layotto"),
        ],
        runtime_keys: KEY_PREFIX,
    },
    BlockInfo {
        kind: Kind::Configuration,
        section: "config_store",
        dapr_prefix: "configuration",
        dapr_rank: Some(3),
        api: "configuration",
        implied_capabilities: &[],
        peer_types: &[
            ("etcd", "Layotto"),
            ("apollo", "Layotto"),
            ("nacos", "Layotto"),
            ("postgresql", "Dapr"),
            ("azure.appconfig", "Dapr"),
        ],
        runtime_keys: &[],
    },
    BlockInfo {
        kind: Kind::PubSub,
        section: "pub_subs",
        dapr_prefix: "pubsub",
        dapr_rank: Some(1),
        api: "pubsub",
        implied_capabilities: &[],
        peer_types: PUBSUB_PEERS,
        runtime_keys: &["consumerID"],
    },
    BlockInfo {
        kind: Kind::Secret,
        section: "secret_store",
        dapr_prefix: "secretstores",
        dapr_rank: Some(4),
        api: "secret",
        implied_capabilities: &[],
        peer_types: &[
            ("kubernetes", "Dapr"),
            ("hashicorp.vault", "Dapr"),
            ("aws.secretmanager", "Dapr"),
            ("azure.keyvault", "Dapr"),
            ("gcp.secretmanager", "Dapr"),
        ],
        runtime_keys: &[],
    },
    BlockInfo {
        kind: Kind::File,
        section: "file",
        dapr_prefix: "file",
        dapr_rank: Some(7),
        api: "file",
        implied_capabilities: &[],
        peer_types: &[
            ("minio", "Layotto"),
            ("aliyun.oss", "Layotto"),
            ("qiniu.oss", "Layotto"),
            ("tencent.oss", "Layotto"),
            ("aws.s3", "Layotto"),
            ("hdfs", "Layotto"),
        ],
        runtime_keys: &[],
    },
    BlockInfo {
        kind: Kind::Binding,
        section: "bindings",
        dapr_prefix: "bindings",
        dapr_rank: Some(5),
        api: "binding",
        implied_capabilities: &[],
        peer_types: BINDING_PEERS,
        // Dapr's input binding keys: `direction` (input, output or both) and `route`.
        runtime_keys: &["direction", "route"],
    },
];

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
