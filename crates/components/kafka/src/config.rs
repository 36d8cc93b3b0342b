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
    /// `authType` (required, as in Dapr, unless the deprecated `authRequired` is given):
    /// `none`, `password` (SASL), `mtls` or `certificate`; `oidc` and `awsiam` are refused as
    /// not supported yet.
    #[serde(rename = "authType")]
    pub auth_type: Option<String>,
    /// `authRequired` (deprecated): the authType when none is given, as Dapr derives it.
    #[serde(rename = "authRequired")]
    pub auth_required: Option<String>,
    /// `saslUsername` (authType `password`).
    #[serde(rename = "saslUsername")]
    pub sasl_username: Option<String>,
    /// `saslPassword` (authType `password`).
    #[serde(rename = "saslPassword")]
    pub sasl_password: Option<String>,
    /// `saslMechanism`: `PLAINTEXT` (SASL PLAIN, the default), `SHA-256` or `SHA-512` (SCRAM).
    #[serde(rename = "saslMechanism")]
    pub sasl_mechanism: Option<String>,
    /// `initialOffset`: where a new consumer group starts, `newest` (default) or `oldest`.
    #[serde(rename = "initialOffset")]
    pub initial_offset: Option<String>,
    /// `maxMessageBytes`: the largest record produced, in bytes.
    #[serde(rename = "maxMessageBytes")]
    pub max_message_bytes: Option<u64>,
    /// `disableTls`: TLS is on unless this is true or `authType` is `none` (as in Dapr).
    #[serde(rename = "disableTls")]
    pub disable_tls: Option<bool>,
    /// `skipVerify`: accept any broker certificate (unsafe).
    #[serde(rename = "skipVerify")]
    pub skip_verify: Option<bool>,
    /// `caCert`: the CA certificate (PEM text) brokers are checked against (default: the
    /// system's CAs).
    #[serde(rename = "caCert")]
    pub ca_cert: Option<String>,
    /// `clientCert`: the client certificate (PEM text) for authType `mtls`.
    #[serde(rename = "clientCert")]
    pub client_cert: Option<String>,
    /// `clientKey`: its key (PEM text).
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
    /// `authType`, `saslMechanism` or `initialOffset`, `password` without its username or
    /// password, a certificate that is no PEM, a bad `consumeRetryInterval`. Unsupported
    /// (naming it) for authType `oidc` and `awsiam`.
    pub fn from_spec(spec: &ComponentSpec, retry_default: bool) -> Result<Self> {
        let m: KafkaMetadata = decode(spec)?;
        let brokers = nonempty(m.brokers)
            .ok_or_else(|| spec_error(spec, "kafka error: missing 'brokers' attribute"))?;
        // Dapr's upgradeMetadata: the deprecated `authRequired` picks the authType when none is
        // given (password when a SASL password is set, else mtls).
        let legacy = match nonempty(m.auth_required.clone()) {
            None => None,
            Some(v) => Some(match layotto_core::metadata::parse_truthy(&v) {
                Some(true) if nonempty(m.sasl_password.clone()).is_some() => "password",
                Some(true) => "mtls",
                Some(false) => "none",
                None => {
                    return Err(spec_error(
                        spec,
                        "kafka error: invalid value for 'authRequired' attribute",
                    ));
                }
            }),
        };
        let auth = nonempty(m.auth_type)
            .or(legacy.map(str::to_owned))
            .ok_or_else(|| {
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
        let auth = auth.to_ascii_lowercase();
        // TLS as Dapr's updateTLSConfig: on unless `disableTls` or authType `none`.
        let tls = tls && auth != "none";
        let ca_cert = nonempty(m.ca_cert);
        if tls {
            if let Some(ca) = ca_cert.clone() {
                check_pem(spec, "caCert", &ca)?;
                client.set("ssl.ca.pem", ca);
            } else {
                client.set("ssl.ca.location", "probe");
            }
            if m.skip_verify.unwrap_or(false) {
                client
                    .set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        match auth.as_str() {
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
                let mechanism = match nonempty(m.sasl_mechanism)
                    .unwrap_or_default()
                    .to_ascii_uppercase()
                    .as_str()
                {
                    "" | "PLAIN" | "PLAINTEXT" => "PLAIN",
                    "SHA-256" | "SCRAM-SHA-256" => "SCRAM-SHA-256",
                    "SHA-512" | "SCRAM-SHA-512" => "SCRAM-SHA-512",
                    other => {
                        return Err(spec_error(
                            spec,
                            format!(
                                "kafka error: invalid saslMechanism '{other}' (PLAINTEXT, SHA-256 or SHA-512)"
                            ),
                        ));
                    }
                };
                client
                    .set(
                        "security.protocol",
                        if tls { "sasl_ssl" } else { "sasl_plaintext" },
                    )
                    .set("sasl.mechanism", mechanism)
                    .set("sasl.username", user)
                    .set("sasl.password", password);
            }
            "mtls" => {
                let cert = nonempty(m.client_cert);
                let key = nonempty(m.client_key);
                match (cert, key) {
                    (Some(c), Some(k)) => {
                        check_pem(spec, "clientCert", &c)?;
                        check_pem(spec, "clientKey", &k)?;
                        client.set("ssl.certificate.pem", c).set("ssl.key.pem", k);
                    }
                    (None, None) => {}
                    _ => {
                        return Err(spec_error(
                            spec,
                            "kafka error: clientKey or clientCert is missing",
                        ));
                    }
                }
                client.set("security.protocol", if tls { "ssl" } else { "plaintext" });
            }
            "certificate" => {
                if ca_cert.is_none() {
                    return Err(spec_error(
                        spec,
                        "missing CA certificate property 'caCert' for authType 'certificate'",
                    ));
                }
                client.set("security.protocol", if tls { "ssl" } else { "plaintext" });
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

/// Checks that `value` of `key` holds a PEM block, as Dapr's `isValidPEM`.
fn check_pem(spec: &ComponentSpec, key: &str, value: &str) -> Result<()> {
    if value.contains("-----BEGIN ") && value.contains("-----END ") {
        Ok(())
    } else {
        Err(spec_error(
            spec,
            format!("kafka error: '{key}' is not a PEM certificate or key"),
        ))
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
        let bad = err(&[
            base[0],
            base[1],
            ("saslUsername", "u"),
            ("saslPassword", "p"),
            ("saslMechanism", "MD5"),
        ]);
        assert!(bad.contains("saslMechanism 'MD5'"), "{bad}");
        assert!(err(&[("brokers", "b"), ("authType", "oidc")]).contains("authType 'oidc'"));
        let half = err(&[("brokers", "b"), ("authType", "mtls"), ("clientCert", "x")]);
        assert!(half.contains("clientCert"), "{half}");
        assert!(err(&[("brokers", "b"), ("authType", "certificate")]).contains("'caCert'"));
        assert!(err(&[("brokers", "b"), ("authRequired", "maybe")]).contains("'authRequired'"));
        let scram = KafkaSettings::from_spec(
            &spec(&[
                ("brokers", "b:1"),
                ("authRequired", "true"),
                ("saslUsername", "u"),
                ("saslPassword", "p"),
                ("saslMechanism", "SHA-512"),
            ]),
            true,
        )
        .expect("valid");
        assert_eq!(scram.client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(scram.client.get("security.protocol"), Some("sasl_ssl"));
        let plain = KafkaSettings::from_spec(
            &spec(&[
                ("brokers", "b:1"),
                ("authType", "password"),
                ("saslUsername", "u"),
                ("saslPassword", "p"),
                ("disableTls", "true"),
            ]),
            true,
        )
        .expect("valid");
        assert_eq!(plain.client.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(
            plain.client.get("security.protocol"),
            Some("sasl_plaintext")
        );
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
