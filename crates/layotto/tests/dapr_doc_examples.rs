//! The Component and Subscription YAML of Dapr's documentation pages for the components and
//! resources this sidecar serves load unchanged: each example as the page shows it (its
//! placeholders filled with the page's own example values, its optional keys uncommented),
//! checked by `layotto validate --resources-path`. Documented keys without effect here are
//! accepted with a warning; none is an error.
#![allow(missing_docs)]

use std::process::Command;

/// docs.dapr.io "PostgreSQL v1" (state), with every optional key of the page.
const POSTGRES_V1: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgv1
spec:
  type: state.postgresql
  version: v1
  metadata:
  # Connection string
  - name: connectionString
    value: "host=localhost user=postgres password=example port=5432 connect_timeout=10 database=my_dapr"
  - name: timeout
    value: 20
  - name: tableName
    value: "state"
  - name: metadataTableName
    value: "dapr_metadata"
  - name: cleanupInterval
    value: "1h"
  - name: maxConns
    value: 0
  - name: connectionMaxIdleTime
    value: 0
  - name: queryExecMode
    value: ""
"#;

/// docs.dapr.io "PostgreSQL" (state, v2), with the individual connection keys of the page
/// (but `sslRootCert`: TLS to PostgreSQL is refused, not supported yet).
const POSTGRES_V2: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgv2
spec:
  type: state.postgresql
  # Note: setting "version" to "v2" is required to use the v2 of the component
  version: v2
  metadata:
  - name: connectionString
    value: "host=localhost user=postgres password=example port=5432 connect_timeout=10 database=my_dapr"
  - name: host
    value: "localhost"
  - name: hostaddr
    value: "127.0.0.1"
  - name: port
    value: "5432"
  - name: database
    value: "my_db"
  - name: user
    value: "postgres"
  - name: password
    value: "example"
  - name: timeout
    value: 20
  - name: tablePrefix
    value: ""
  - name: metadataTableName
    value: "dapr_metadata"
  - name: cleanupInterval
    value: "1h"
  - name: maxConns
    value: 0
  - name: connectionMaxIdleTime
    value: 0
  - name: queryExecMode
    value: ""
"#;

/// docs.dapr.io "PostgreSQL" (configuration store).
const POSTGRES_CONFIG: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgconfig
spec:
  type: configuration.postgresql
  version: v1
  metadata:
  # Connection string
  - name: connectionString
    value: "host=localhost user=postgres password=example port=5432 connect_timeout=10 database=config"
  # Name of the table which holds configuration information
  - name: table
    value: "configtable"
  - name: timeoutInSeconds
    value: 20
  - name: maxConns
    value: 0
  - name: connectionMaxIdleTime
    value: 0
  - name: queryExecMode
    value: ""
"#;

/// docs.dapr.io "Cron binding spec".
const CRON: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: scheduled
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: "@every 15m" # valid cron schedule
  - name: direction
    value: "input"
"#;

/// docs.dapr.io "Declarative and programmatic subscription methods" and "How to: Route
/// messages to different event handlers".
const SUBSCRIPTIONS: &str = r#"apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: order-pub-sub
spec:
  topic: orders
  routes:
    default: /orders
  pubsubname: pubsub
scopes:
- orderprocessing
- checkout
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: myevent-subscription
spec:
  pubsubname: pubsub
  topic: inventory
  routes:
    rules:
      - match: event.type == "widget"
        path: /widgets
      - match: event.type == "gadget"
        path: /gadgets
    default: /products
scopes:
  - orderprocessing
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: order
spec:
  topic: orders-v1
  route: /checkout
  pubsubname: pubsub
  deadLetterTopic: poisonMessages
scopes:
- orderprocessing
"#;

/// docs.dapr.io "JetStream" (pub/sub), with every key of the page.
const JETSTREAM: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: jetstream-pubsub
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - name: natsURL
    value: "nats://localhost:4222"
  - name: jwt # Optional. Used for decentralized JWT authentication.
    value: "eyJhbGciOiJ...6yJV_adQssw5c"
  - name: seedKey # Optional. Used for decentralized JWT authentication.
    value: "SUACS34K232O...5Z3POU7BNIL4Y"
  - name: tls_client_cert # Optional. Used for TLS Client authentication.
    value: "/path/to/tls.crt"
  - name: tls_client_key # Optional. Used for TLS Client authentication.
    value: "/path/to/tls.key"
  - name: token # Optional. Used for token based authentication.
    value: "my-token"
  - name: name
    value: "my-conn-name"
  - name: streamName
    value: "my-stream"
  - name: durableName
    value: "my-durable-subscription"
  - name: queueGroupName
    value: "my-queue-group"
  - name: startSequence
    value: 1
  - name: startTime # In Unix format
    value: 1630349391
  - name: flowControl
    value: false
  - name: ackWait
    value: 10s
  - name: maxDeliver
    value: 5
  - name: backOff
    value: "50ms, 1s, 10s"
  - name: maxAckPending
    value: 5000
  - name: replicas
    value: 1
  - name: memoryStorage
    value: false
  - name: rateLimit
    value: 1024
  - name: heartbeat
    value: 15s
  - name: ackPolicy
    value: explicit
  - name: deliverPolicy
    value: all
  - name: domain
    value: hub
  - name: apiPrefix
    value: PREFIX
"#;

/// docs.dapr.io "Apache Kafka" (pub/sub), with every key of the page. Its SASL password is a
/// `secretKeyRef`, which outside Kubernetes needs `auth.secretStore` (added, naming the local
/// file store of [`KAFKA_SECRETS`]).
const KAFKA_PUBSUB: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: kafka-pubsub
auth:
  secretStore: kafka-secrets-store
spec:
  type: pubsub.kafka
  version: v1
  metadata:
  - name: brokers # Required. Kafka broker connection setting
    value: "dapr-kafka.myapp.svc.cluster.local:9092"
  - name: consumerGroup # Optional. Used for input bindings.
    value: "{namespace}"
  - name: consumerID # Optional. If not supplied, runtime will create one.
    value: "channel1"
  - name: clientID # Optional. Used as client tracing ID by Kafka brokers.
    value: "my-dapr-app-id"
  - name: authType # Required.
    value: "password"
  - name: saslUsername # Required if authType is `password`.
    value: "adminuser"
  - name: saslPassword # Required if authType is `password`.
    secretKeyRef:
      name: kafka-secrets
      key: saslPasswordSecret
  - name: saslMechanism
    value: "SHA-512"
  - name: maxMessageBytes # Optional.
    value: 1024
  - name: consumeRetryInterval # Optional.
    value: 200ms
  - name: heartbeatInterval # Optional.
    value: 5s
  - name: sessionTimeout # Optional.
    value: 15s
  - name: version # Optional.
    value: 2.0.0
  - name: disableTls # Optional. Disable TLS. This is not safe for production!! You should read the `Mutual TLS` section for how to use TLS.
    value: "true"
  - name: consumerFetchMin # Optional. Advanced setting. The minimum number of message bytes to fetch in a request - the broker will wait until at least this many are available.
    value: 1
  - name: consumerFetchDefault # Optional. Advanced setting. The default number of message bytes to fetch from the broker in each request.
    value: 2097152
  - name: channelBufferSize # Optional. Advanced setting. The number of events to buffer in internal and external channels.
    value: 512
  - name: schemaRegistryURL # Optional. When using Schema Registry Avro serialization/deserialization. The Schema Registry URL.
    value: http://localhost:8081
  - name: schemaRegistryAPIKey # Optional. When using Schema Registry Avro serialization/deserialization. The Schema Registry API Key.
    value: XYAXXAZ
  - name: schemaRegistryAPISecret # Optional. When using Schema Registry Avro serialization/deserialization. The Schema Registry credentials API Secret.
    value: "ABCDEFGMEADFF"
  - name: schemaCachingEnabled # Optional. When using Schema Registry Avro serialization/deserialization. Enables caching for schemas.
    value: true
  - name: schemaLatestVersionCacheTTL # Optional. When using Schema Registry Avro serialization/deserialization. The TTL for schema caching when publishing a message with latest schema available.
    value: 5m
"#;

/// docs.dapr.io "Kafka binding spec", with every key of the page (and `auth.secretStore`, as
/// [`KAFKA_PUBSUB`]).
const KAFKA_BINDING: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: kafka-binding
auth:
  secretStore: kafka-secrets-store
spec:
  type: bindings.kafka
  version: v1
  metadata:
  - name: topics # Optional. Used for input bindings.
    value: "topic1,topic2"
  - name: brokers # Required.
    value: "localhost:9092,localhost:9093"
  - name: consumerGroup # Optional. Used for input bindings.
    value: "group1"
  - name: publishTopic # Optional. Used for output bindings.
    value: "topic3"
  - name: authRequired # Required.
    value: "true"
  - name: saslUsername # Required if authRequired is `true`.
    value: "user"
  - name: saslPassword # Required if authRequired is `true`.
    secretKeyRef:
      name: kafka-secrets
      key: "saslPasswordSecret"
  - name: saslMechanism
    value: "SHA-512"
  - name: initialOffset # Optional. Used for input bindings.
    value: "newest"
  - name: maxMessageBytes # Optional.
    value: "1024"
  - name: heartbeatInterval # Optional.
    value: 5s
  - name: sessionTimeout # Optional.
    value: 15s
  - name: version # Optional.
    value: "2.0.0"
  - name: direction
    value: "input, output"
"#;

/// The secret store the Kafka examples' `secretKeyRef` reads (`{dir}` is the fixture dir).
const KAFKA_SECRETS: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: kafka-secrets-store
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: "{dir}/secrets.json"
  - name: nestedSeparator
    value: ":"
"#;

/// docs.dapr.io "RabbitMQ" (pub/sub), with every key of the page (`{podName}` needs
/// `POD_NAME`, set for the run as Kubernetes sets it).
const RABBITMQ: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: rabbitmq-pubsub
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
  - name: connectionString
    value: "amqp://localhost:5672"
  - name: protocol
    value: amqp
  - name: hostname
    value: localhost
  - name: username
    value: username
  - name: password
    value: password
  - name: consumerID
    value: channel1
  - name: durable
    value: false
  - name: deletedWhenUnused
    value: false
  - name: autoAck
    value: false
  - name: deliveryMode
    value: 0
  - name: requeueInFailure
    value: false
  - name: prefetchCount
    value: 0
  - name: reconnectWait
    value: 0
  - name: concurrencyMode
    value: parallel
  - name: publisherConfirm
    value: false
  - name: enableDeadLetter # Optional enable dead Letter or not
    value: true
  - name: maxLen # Optional max message count in a queue
    value: 3000
  - name: maxLenBytes # Optional maximum length in bytes of a queue.
    value: 10485760
  - name: exchangeKind
    value: fanout
  - name: saslExternal
    value: false
  - name: ttlInSeconds
    value: 60
  - name: clientName
    value: {podName}
  - name: heartBeat
    value: 10s
"#;

/// docs.dapr.io "MQTT3" (pub/sub), its URL template filled in.
const MQTT3: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mqtt-pubsub
spec:
  type: pubsub.mqtt3
  version: v1
  metadata:
    - name: url
      value: "tcp://user:password@host.domain:1883"
    - name: retain
      value: "false"
    - name: cleanSession
      value: "false"
    - name: qos
      value: "1"
    - name: consumerID
      value: "channel1"
"#;

/// docs.dapr.io "RabbitMQ binding spec", as the page shows it (the host placeholder filled).
const RABBITMQ_BINDING: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: rabbitmq-binding
spec:
  type: bindings.rabbitmq
  version: v1
  metadata:
  - name: queueName
    value: "queue1"
  - name: host
    value: "amqp://guest:guest@localhost:5672"
  - name: durable
    value: "true"
  - name: deleteWhenUnused
    value: "false"
  - name: ttlInSeconds
    value: "60"
  - name: prefetchCount
    value: "0"
  - name: exclusive
    value: "false"
  - name: maxPriority
    value: "5"
  - name: contentType
    value: "text/plain"
  - name: reconnectWaitInSeconds
    value: "5"
  - name: externalSasl
    value: "false"
  - name: caCert
    value: "null"
  - name: clientCert
    value: "null"
  - name: clientKey
    value: "null"
  - name: direction 
    value: "input, output"
"#;

/// docs.dapr.io "Redis" (state), every key of the page, its placeholders filled with the
/// page's example values and `redisType: cluster` (`clientCert`/`clientKey` left empty as the
/// page shows them).
const REDIS_STATE: &str = r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redis-cluster-state
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: "redis-0:6379,redis-1:6379,redis-2:6379"
  - name: redisPassword # Optional.
    value: "KeFg23!"
  - name: useEntraID
    value: "false" # Optional. Allowed: true, false.
  - name: enableTLS
    value: "false" # Optional. Allowed: true, false.
  - name: clientCert
    value: # Optional
  - name: clientKey
    value: # Optional    
  - name: maxRetries
    value: "5" # Optional
  - name: maxRetryBackoff
    value: "3000000000" # Optional
  - name: failover
    value: "false" # Optional. Allowed: true, false.
  - name: sentinelMasterName
    value: "mymaster" # Optional
  - name: redeliverInterval
    value: "30s" # Optional
  - name: processingTimeout
    value: "30s" # Optional
  - name: redisType
    value: "cluster" # Optional
  - name: redisDB
    value: "0" # Optional
  - name: redisMaxRetries
    value: "5" # Optional
  - name: redisMinRetryInterval
    value: "8ms" # Optional
  - name: redisMaxRetryInterval
    value: "512ms" # Optional
  - name: dialTimeout
    value: "5s" # Optional
  - name: readTimeout
    value: "3s" # Optional
  - name: writeTimeout
    value: "3s" # Optional
  - name: poolSize
    value: "20" # Optional
  - name: poolTimeout
    value: "5s" # Optional
  - name: maxConnAge
    value: "30m" # Optional
  - name: minIdleConns
    value: "2" # Optional
  - name: idleCheckFrequency
    value: "-1" # Optional
  - name: idleTimeout
    value: "10m" # Optional
  - name: ttlInSeconds
    value: "600" # Optional
  - name: queryIndexes
    value: "" # Optional
  - name: actorStateStore
    value: "true"
"#;

const PUBSUB: &str = "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
";

#[test]
fn documented_examples_load_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("pgv1.yaml", POSTGRES_V1),
        ("pgv2.yaml", POSTGRES_V2),
        ("pgconfig.yaml", POSTGRES_CONFIG),
        ("cron.yaml", CRON),
        ("subscriptions.yaml", SUBSCRIPTIONS),
        ("pubsub.yaml", PUBSUB),
        ("jetstream.yaml", JETSTREAM),
        ("kafka-pubsub.yaml", KAFKA_PUBSUB),
        ("kafka-binding.yaml", KAFKA_BINDING),
        ("kafka-secrets.yaml", KAFKA_SECRETS),
        ("rabbitmq.yaml", RABBITMQ),
        ("rabbitmq-binding.yaml", RABBITMQ_BINDING),
        ("redis-state.yaml", REDIS_STATE),
        ("mqtt3.yaml", MQTT3),
    ] {
        let text = text.replace("{dir}", dir.path().to_str().expect("utf-8"));
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    std::fs::write(
        dir.path().join("secrets.json"),
        r#"{"kafka-secrets": {"saslPasswordSecret": "s3cr3t"}}"#,
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_layotto"))
        .args([
            "validate",
            "--app-id",
            "orderprocessing",
            "--resources-path",
        ])
        .arg(dir.path())
        .env("POD_NAME", "orders-7d9f")
        .output()
        .expect("run layotto validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Keys that mean nothing here are named, not refused.
    for key in [
        "queryExecMode",
        "connectionMaxIdleTime",
        "flowControl",
        "rateLimit",
        "heartbeat",
        "queueGroupName",
        "channelBufferSize",
        "schemaRegistryURL",
        "reconnectWait",
        "concurrencyMode",
        "contentType",
        "sentinelMasterName",
        "poolSize",
    ] {
        assert!(err.contains(key), "no warning about '{key}': {err}");
    }
    assert!(!err.contains("error"), "{err}");
}
