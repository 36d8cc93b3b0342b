//! The metadata Dapr's Kafka components share (`dapr/components-contrib:common/component/kafka`
//! `metadata.go`; docs.dapr.io "Apache Kafka") and the librdkafka settings made from it.

use std::time::Duration;

use layotto_core::metadata::{ComponentMetadata, GoDuration, decode, spec_error};
use layotto_core::{ComponentSpec, Error, Result};
use rdkafka::ClientConfig;
use serde::Deserialize;

/// Metadata of `pubsub.kafka` and `bindings.kafka` (the binding adds `topics` and
/// `publishTopic`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KafkaMetadata {
    /// `brokers` (required): comma-separated `host:port` list.
    pub brokers: Option<String>,
    /// `consumerGroup`: the consumer group (else `consumerID`).
    #[serde(rename = "consumerGroup")]
    pub consumer_group: Option<String>,
    /// `consumerID`: the consumer group when `consumerGroup` is not given.
    #[serde(rename = "consumerID")]
    pub consumer_id: Option<String>,
    /// `clientId` (alias `clientID`): the client id the brokers see (default `layotto-rs`).
    #[serde(rename = "clientId", alias = "clientID")]
    pub client_id: Option<String>,
    /// `authType` (required, as in Dapr): `none`, or `password` (SASL PLAIN, with
    /// `disableTls: true`). `mtls`, `certificate`, `oidc` and `awsiam` are refused.
    #[serde(rename = "authType")]
    pub auth_type: Option<String>,
    /// `saslUsername` (authType `password`).
    #[serde(rename = "saslUsername")]
    pub sasl_username: Option<String>,
    /// `saslPassword` (authType `password`).
    #[serde(rename = "saslPassword")]
    pub sasl_password: Option<String>,
    /// `saslMechanism`: `PLAIN` (the default); the SCRAM mechanisms are refused.
    #[serde(rename = "saslMechanism")]
    pub sasl_mechanism: Option<String>,
    /// `initialOffset`: where a new consumer group starts, `newest` (default) or `oldest`.
    #[serde(rename = "initialOffset")]
    pub initial_offset: Option<String>,
    /// `maxMessageBytes`: the largest record produced, in bytes.
    #[serde(rename = "maxMessageBytes")]
    pub max_message_bytes: Option<u64>,
    /// `disableTls`: Dapr connects with TLS unless this is true or `authType` is `none`.
    #[serde(rename = "disableTls")]
    pub disable_tls: Option<bool>,
    /// `skipVerify` (TLS; refused with TLS).
    #[serde(rename = "skipVerify")]
    pub skip_verify: Option<bool>,
    /// `caCert` (TLS; refused).
    #[serde(rename = "caCert")]
    pub ca_cert: Option<String>,
    /// `clientCert` (mTLS; refused).
    #[serde(rename = "clientCert")]
    pub client_cert: Option<String>,
    /// `clientKey` (mTLS; refused).
    #[serde(rename = "clientKey")]
    pub client_key: Option<String>,
    /// `consumeRetryEnabled`: retry a failed delivery in place (pub/sub default true, binding
    /// default false: the failed record is skipped, as Dapr does).
    #[serde(rename = "consumeRetryEnabled")]
    pub consume_retry_enabled: Option<bool>,
    /// `consumeRetryInterval`: the delay between those retries (Go duration, or bare
    /// milliseconds as Dapr reads it; default: growing from 100 ms to 5 s).
    #[serde(rename = "consumeRetryInterval")]
    pub consume_retry_interval: Option<String>,
    /// `heartbeatInterval`: consumer heartbeat (default 3 s).
    #[serde(rename = "heartbeatInterval")]
    pub heartbeat_interval: Option<GoDuration>,
    /// `sessionTimeout`: consumer session timeout (default 10 s).
    #[serde(rename = "sessionTimeout")]
    pub session_timeout: Option<GoDuration>,
    /// `topics` (binding): comma-separated topics the input binding reads.
    pub topics: Option<String>,
    /// `publishTopic` (binding): the topic the output binding writes.
    #[serde(rename = "publishTopic")]
    pub publish_topic: Option<String>,
}

impl ComponentMetadata for KafkaMetadata {
    /// sarama's protocol version and tuning (librdkafka negotiates versions itself), and the
    /// schema registry (Avro is not supported: values pass as bytes).
    const NO_EFFECT: &'static [&'static str] = &[
        "version",
        "channelBufferSize",
        "clientConnectionTopicMetadataRefreshInterval",
        "clientConnectionKeepAliveInterval",
        "consumerFetchMin",
        "consumerFetchDefault",
        "direction",
        "schemaRegistryURL",
        "schemaRegistryAPIKey",
        "schemaRegistryAPISecret",
        "schemaCachingEnabled",
        "schemaLatestVersionCacheTTL",
        "valueSchemaType",
    ];
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    /// At the end of each partition at the time the group first gets it.
    Newest,
    /// At the start of each partition.
    Oldest,
}

/// Settings read from [`KafkaMetadata`].
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// librdkafka settings shared by producers and consumers.
    pub client: ClientConfig,
    /// `consumerGroup`, if given.
    pub consumer_group: Option<String>,
    /// The component's `consumerID`, if given.
    pub consumer_id: Option<String>,
    /// Where a new group starts.
    pub initial_offset: InitialOffset,
    /// Whether a failed delivery is retried in place.
    pub retry: bool,
    /// Fixed delay between those retries (else growing).
    pub retry_interval: Option<Duration>,
    /// `maxMessageBytes`.
    pub max_message_bytes: Option<u64>,
    /// Binding: topics to read.
    pub topics: Vec<String>,
    /// Binding: topic to write.
    pub publish_topic: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl KafkaSettings {
    /// Reads `spec`; `retry_default` is `consumeRetryEnabled`'s default (Dapr: true for the
    /// pub/sub, false for the binding).
    ///
    /// # Errors
    /// Invalid argument naming the key: `brokers` or `authType` missing, an unknown
    /// `authType` or `initialOffset`, `password` without its username or password, a bad
    /// `consumeRetryInterval`. Unsupported (naming it) for TLS, mTLS, OIDC, AWS IAM and the
    /// SCRAM mechanisms.
    pub fn from_spec(spec: &ComponentSpec, retry_default: bool) -> Result<Self> {
        let m: KafkaMetadata = decode(spec)?;
        let brokers = nonempty(m.brokers)
            .ok_or_else(|| spec_error(spec, "kafka error: missing 'brokers' attribute"))?;
        let auth = nonempty(m.auth_type).ok_or_else(|| {
            spec_error(
                spec,
                "kafka error: 'authType' attribute was missing or empty",
            )
        })?;
        let unsupported = |what: &str| {
            Error::unsupported(format!(
                "component '{}' (type '{}'): {what} is not supported yet",
                spec.name, spec.type_
            ))
        };
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", brokers.replace(' ', ""))
            .set(
                "client.id",
                nonempty(m.client_id).unwrap_or_else(|| "layotto-rs".to_owned()),
            );
        let tls = !m.disable_tls.unwrap_or(false);
        match auth.to_ascii_lowercase().as_str() {
            "none" => {
                client.set("security.protocol", "plaintext");
            }
            "password" => {
                let user = nonempty(m.sasl_username).ok_or_else(|| {
                    spec_error(
                        spec,
                        "kafka error: missing SASL Username for authType 'password'",
                    )
                })?;
                let password = nonempty(m.sasl_password).ok_or_else(|| {
                    spec_error(
                        spec,
                        "kafka error: missing SASL Password for authType 'password'",
                    )
                })?;
                if tls {
                    return Err(unsupported(
                        "TLS to Kafka (authType 'password' without 'disableTls: true')",
                    ));
                }
                let mechanism = nonempty(m.sasl_mechanism).unwrap_or_else(|| "PLAIN".to_owned());
                if !mechanism.eq_ignore_ascii_case("PLAIN") {
                    return Err(unsupported(&format!("saslMechanism '{mechanism}'")));
                }
                client
                    .set("security.protocol", "sasl_plaintext")
                    .set("sasl.mechanism", "PLAIN")
                    .set("sasl.username", user)
                    .set("sasl.password", password);
            }
            "mtls" | "certificate" => {
                return Err(unsupported(&format!("authType '{auth}' (TLS to Kafka)")));
            }
            "oidc" | "awsiam" => return Err(unsupported(&format!("authType '{auth}'"))),
            _ => {
                return Err(spec_error(
                    spec,
                    "kafka error: invalid value for 'authType' attribute",
                ));
            }
        }
        if let Some(d) = m.heartbeat_interval {
            client.set("heartbeat.interval.ms", millis(d.0).to_string());
        }
        if let Some(d) = m.session_timeout {
            client.set("session.timeout.ms", millis(d.0).to_string());
        }
        let initial_offset = match m.initial_offset.as_deref().map(str::trim).unwrap_or("") {
            "" => InitialOffset::Newest,
            s if s.eq_ignore_ascii_case("newest") => InitialOffset::Newest,
            s if s.eq_ignore_ascii_case("oldest") => InitialOffset::Oldest,
            other => {
                return Err(spec_error(
                    spec,
                    format!("kafka error: invalid initialOffset: {other}"),
                ));
            }
        };
        let retry_interval = match nonempty(m.consume_retry_interval) {
            None => None,
            Some(raw) => Some(
                layotto_core::metadata::parse_duration(&raw, Duration::from_millis).ok_or_else(
                    || {
                        spec_error(
                            spec,
                            format!(
                                "kafka error: invalid value for 'consumeRetryInterval' attribute: {raw}"
                            ),
                        )
                    },
                )?,
            ),
        };
        Ok(Self {
            client,
            consumer_group: nonempty(m.consumer_group),
            consumer_id: nonempty(m.consumer_id),
            initial_offset,
            retry: m.consume_retry_enabled.unwrap_or(retry_default),
            retry_interval,
            max_message_bytes: m.max_message_bytes.filter(|n| *n > 0),
            topics: nonempty(m.topics)
                .map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            publish_topic: nonempty(m.publish_topic),
        })
    }
}

/// `d` in whole milliseconds (saturating).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pairs: &[(&str, &str)]) -> ComponentSpec {
        let mut s = ComponentSpec::new("k", "kafka");
        for (k, v) in pairs {
            s = s.with(*k, *v);
        }
        s
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        KafkaSettings::from_spec(&spec(pairs), true)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn metadata_is_checked_as_dapr_checks_it() {
        assert!(err(&[("authType", "none")]).contains("'brokers'"));
        assert!(err(&[("brokers", "b:9092")]).contains("'authType'"));
        assert!(err(&[("brokers", "b:9092"), ("authType", "kerberos")]).contains("'authType'"));
        let base = [("brokers", "b:9092"), ("authType", "password")];
        assert!(err(&base).contains("SASL Username"));
        assert!(err(&[base[0], base[1], ("saslUsername", "u")]).contains("SASL Password"));
        let tls = err(&[
            base[0],
            base[1],
            ("saslUsername", "u"),
            ("saslPassword", "p"),
        ]);
        assert!(
            tls.contains("TLS") && tls.contains("not supported"),
            "{tls}"
        );
        let scram = err(&[
            base[0],
            base[1],
            ("saslUsername", "u"),
            ("saslPassword", "p"),
            ("disableTls", "true"),
            ("saslMechanism", "SHA-512"),
        ]);
        assert!(scram.contains("SHA-512"), "{scram}");
        assert!(err(&[("brokers", "b"), ("authType", "mtls")]).contains("authType 'mtls'"));
        assert!(
            err(&[
                ("brokers", "b"),
                ("authType", "none"),
                ("initialOffset", "x")
            ])
            .contains("invalid initialOffset: x")
        );
        let ok = KafkaSettings::from_spec(
            &spec(&[
                ("brokers", "a:1, b:2"),
                ("authType", "none"),
                ("consumerID", "grp"),
                ("initialOffset", "oldest"),
                ("consumeRetryInterval", "200"),
                ("topics", "t1, t2"),
            ]),
            false,
        )
        .expect("valid");
        assert_eq!(ok.client.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(ok.consumer_id.as_deref(), Some("grp"));
        assert_eq!(ok.initial_offset, InitialOffset::Oldest);
        assert_eq!(ok.retry_interval, Some(Duration::from_millis(200)));
        assert!(!ok.retry);
        assert_eq!(ok.topics, ["t1", "t2"]);
        let grouped = KafkaSettings::from_spec(
            &spec(&[
                ("brokers", "a:1"),
                ("authType", "none"),
                ("consumerID", "id"),
                ("consumerGroup", "group"),
            ]),
            true,
        )
        .expect("valid");
        assert_eq!(grouped.consumer_group.as_deref(), Some("group"));
    }
}
