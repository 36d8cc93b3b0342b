//! CloudEvents 1.0 envelopes, as Layotto and Dapr wrap published data.
//!
//! Follows Dapr's `NewCloudEventsEnvelope` (components-contrib `pubsub/envelope.go`), which
//! Layotto's `PublishEvent` uses: JSON data is embedded as `data`, text as a `data` string,
//! anything else as `data_base64`. Data whose content type already is
//! `application/cloudevents+json` is forwarded as it is, after filling missing required
//! attributes.

use base64::Engine as _;
use bytes::Bytes;
use layotto_core::{Error, Metadata, Result};
use serde_json::{Map, Value};

/// Content type of a structured-mode CloudEvent.
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The `type` attribute given to events this runtime wraps.
pub const DEFAULT_EVENT_TYPE: &str = "com.dapr.event.sent";
/// The CloudEvents spec version produced.
pub const SPEC_VERSION: &str = "1.0";

/// A decoded event as delivered to an app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicEvent {
    /// Event id.
    pub id: String,
    /// Event source (the publishing app id).
    pub source: String,
    /// Event type.
    pub type_: String,
    /// CloudEvents spec version.
    pub spec_version: String,
    /// Content type of `data`.
    pub data_content_type: String,
    /// Payload bytes (JSON text for JSON data, decoded bytes for `data_base64`).
    pub data: Bytes,
    /// Topic.
    pub topic: String,
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Message metadata.
    pub metadata: Metadata,
    /// The publisher's W3C `traceparent` (CloudEvents distributed-tracing extension).
    pub trace_parent: Option<String>,
    /// Its `tracestate`.
    pub trace_state: Option<String>,
    /// The message as the broker delivered it: what a dead-letter topic receives (empty for
    /// events that did not come from a broker).
    pub raw: Bytes,
    /// The event's other attributes (`time`, `subject`, `expiration`, `traceid`, custom
    /// extensions), passed on to the app as daprd passes the whole CloudEvent.
    pub extensions: Map<String, Value>,
}

/// The attributes [`TopicEvent`] holds in fields of its own (all others are
/// [`TopicEvent::extensions`]).
const OWN_ATTRIBUTES: [&str; 11] = [
    "id",
    "source",
    "type",
    "specversion",
    "datacontenttype",
    "data",
    "data_base64",
    "topic",
    "pubsubname",
    "traceparent",
    "tracestate",
];

/// The media type of `content_type`, in lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether data of `content_type` is JSON: `application/json` or any `+json` type (with or
/// without parameters). The envelope embeds such data as a JSON value.
pub fn is_json_content_type(content_type: &str) -> bool {
    let ct = media_type(content_type);
    ct == "application/json" || ct.ends_with("+json")
}

/// Whether data of `content_type` is text, by Dapr's rule (components-contrib
/// `contenttype.IsStringContentType`): any `text/*` type, or `application/xml` (with or
/// without parameters). Other XML types (`+xml`) are not text to Dapr: they travel as
/// `data_base64`. Every envelope, delivery and bulk-publish decision uses this one rule.
pub fn is_text_content_type(content_type: &str) -> bool {
    content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("text/")
        || media_type(content_type) == "application/xml"
}

/// Wraps `data` for `topic` on `pubsub_name`, published by `source`.
///
/// An empty `content_type` means `application/json` when `data` is valid JSON and
/// `text/plain` otherwise.
///
/// # Errors
/// Invalid argument when `content_type` is `application/cloudevents+json` but `data` is not a
/// JSON object.
pub fn envelope(
    source: &str,
    topic: &str,
    pubsub_name: &str,
    data: &[u8],
    content_type: &str,
) -> Result<Bytes> {
    let mut ce: Map<String, Value> = if content_type
        .to_ascii_lowercase()
        .starts_with(CLOUDEVENT_CONTENT_TYPE)
    {
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(Error::invalid(format!(
                    "data is not a JSON object although data_content_type is '{CLOUDEVENT_CONTENT_TYPE}'"
                )));
            }
        }
    } else {
        let parsed = serde_json::from_slice::<Value>(data).ok();
        let ct = if content_type.is_empty() {
            if parsed.is_some() {
                "application/json"
            } else {
                "text/plain"
            }
        } else {
            content_type
        };
        let mut m = Map::new();
        m.insert("datacontenttype".into(), Value::String(ct.to_owned()));
        match (is_json_content_type(ct), parsed) {
            (true, Some(v)) => {
                m.insert("data".into(), v);
            }
            _ if is_text_content_type(ct)
                || (is_json_content_type(ct) && std::str::from_utf8(data).is_ok()) =>
            {
                m.insert(
                    "data".into(),
                    Value::String(String::from_utf8_lossy(data).into_owned()),
                );
            }
            _ => {
                m.insert(
                    "data_base64".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
                );
            }
        }
        m
    };
    let defaults = [
        ("specversion", SPEC_VERSION.to_owned()),
        ("id", uuid::Uuid::new_v4().to_string()),
        ("source", source.to_owned()),
        ("type", DEFAULT_EVENT_TYPE.to_owned()),
        // Dapr's envelope: the publish time, RFC 3339 at second precision.
        (
            "time",
            layotto_core::state::rfc3339(std::time::SystemTime::now()),
        ),
    ];
    for (k, v) in defaults {
        ce.entry(k).or_insert(Value::String(v));
    }
    ce.entry("datacontenttype")
        .or_insert(Value::String("application/json".into()));
    ce.insert("topic".into(), Value::String(topic.to_owned()));
    ce.insert("pubsubname".into(), Value::String(pubsub_name.to_owned()));
    // The publisher's trace, as Dapr's CloudEvents carry it (`traceid` is Dapr's older name).
    if let Some((parent, state)) = crate::trace::current_traceparent() {
        ce.entry("traceparent")
            .or_insert_with(|| Value::String(parent.clone()));
        ce.entry("traceid").or_insert(Value::String(parent));
        if !state.is_empty() {
            ce.entry("tracestate").or_insert(Value::String(state));
        }
    }
    serde_json::to_vec(&Value::Object(ce))
        .map(Bytes::from)
        .map_err(|e| Error::internal(format!("encoding CloudEvent: {e}")))
}

/// Go's `strconv.ParseBool`, which Dapr uses for boolean metadata such as `rawPayload`:
/// `1 t T TRUE true True` / `0 f F FALSE false False`, anything else `None`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether publish or subscription `metadata` turns CloudEvent wrapping off
/// (`rawPayload`, read as components-contrib `metadata.IsRawPayload` does).
pub fn is_raw_payload(metadata: &Metadata) -> bool {
    metadata
        .get(crate::RAW_PAYLOAD_KEY)
        .and_then(|v| parse_go_bool(v))
        .unwrap_or(false)
}

/// A delivered message taken as an opaque payload (a raw-payload subscription, or data that is
/// no CloudEvent): a fresh id, `application/octet-stream`, the bytes unchanged.
pub fn raw_event(raw: &[u8], topic: &str, pubsub_name: &str, metadata: Metadata) -> TopicEvent {
    TopicEvent {
        id: uuid::Uuid::new_v4().to_string(),
        spec_version: SPEC_VERSION.into(),
        type_: DEFAULT_EVENT_TYPE.into(),
        data_content_type: "application/octet-stream".into(),
        data: Bytes::copy_from_slice(raw),
        topic: topic.into(),
        pubsub_name: pubsub_name.into(),
        metadata,
        ..Default::default()
    }
}

/// Decodes a delivered message; a payload that is no CloudEvent (no JSON object with a
/// `specversion`) is delivered unchanged with a fresh id.
pub fn decode(raw: &[u8], topic: &str, pubsub_name: &str, metadata: Metadata) -> TopicEvent {
    let m = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(m)) if m.contains_key("specversion") => m,
        // JSON that is no CloudEvent (published with rawPayload): delivered unchanged.
        Ok(_) => {
            let mut ev = raw_event(raw, topic, pubsub_name, metadata);
            ev.data_content_type = "application/json".into();
            return ev;
        }
        Err(_) => return raw_event(raw, topic, pubsub_name, metadata),
    };
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let data_content_type = s("datacontenttype");
    let data = if let Some(Value::String(b64)) = m.get("data_base64") {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from(b64.clone().into_bytes()))
    } else {
        match m.get("data") {
            None | Some(Value::Null) => Bytes::new(),
            Some(Value::String(t)) if !is_json_content_type(&data_content_type) => {
                Bytes::from(t.clone().into_bytes())
            }
            Some(v) => Bytes::from(v.to_string().into_bytes()),
        }
    };
    TopicEvent {
        id: s("id"),
        source: s("source"),
        type_: s("type"),
        spec_version: s("specversion"),
        data_content_type,
        data,
        topic: Some(s("topic"))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| topic.into()),
        pubsub_name: Some(s("pubsubname"))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| pubsub_name.into()),
        metadata,
        trace_parent: Some(s("traceparent")).filter(|t| !t.is_empty()),
        trace_state: Some(s("tracestate")).filter(|t| !t.is_empty()),
        raw: Bytes::new(),
        extensions: m
            .iter()
            .filter(|(k, _)| !OWN_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The `source` of events whose publisher gave none, and of raw payloads (Dapr's
/// `FromRawPayload`).
pub const DEFAULT_EVENT_SOURCE: &str = "Dapr";

/// The structured CloudEvent an app is handed for `ev`, as daprd builds it: `id`, `source`,
/// `type`, `specversion`, `datacontenttype`, `data` (the JSON value for JSON data, a string for
/// text) or `data_base64` (anything else), `topic`, `pubsubname`, the trace fields, and the
/// event's other attributes (`time`, extensions). With
/// `raw_payload` (a subscription with `rawPayload: "true"`) the payload is wrapped as Dapr's
/// `FromRawPayload` does (components-contrib `pubsub/envelope.go`): `data_base64` of the raw
/// bytes, `datacontenttype: application/octet-stream`, `source: Dapr`. Routing rules see this
/// same map as `event`.
pub fn delivered(ev: &TopicEvent, raw_payload: bool) -> Map<String, Value> {
    let id = if ev.id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        ev.id.clone()
    };
    let mut ce = if raw_payload {
        Map::new()
    } else {
        ev.extensions.clone()
    };
    ce.insert("id".to_owned(), Value::String(id));
    let text =
        |v: &str, default: &str| Value::String(if v.is_empty() { default } else { v }.to_owned());
    if raw_payload {
        ce.insert("specversion".into(), Value::String(SPEC_VERSION.into()));
        ce.insert(
            "datacontenttype".into(),
            Value::String("application/octet-stream".into()),
        );
        ce.insert("source".into(), Value::String(DEFAULT_EVENT_SOURCE.into()));
        ce.insert("type".into(), Value::String(DEFAULT_EVENT_TYPE.into()));
        ce.insert(
            "data_base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(&ev.data)),
        );
    } else {
        ce.insert("source".into(), text(&ev.source, DEFAULT_EVENT_SOURCE));
        ce.insert("type".into(), text(&ev.type_, DEFAULT_EVENT_TYPE));
        ce.insert("specversion".into(), text(&ev.spec_version, SPEC_VERSION));
        if !ev.data_content_type.is_empty() {
            ce.insert(
                "datacontenttype".into(),
                Value::String(ev.data_content_type.clone()),
            );
        }
        put_data(&mut ce, &ev.data_content_type, &ev.data);
    }
    ce.insert("topic".into(), Value::String(ev.topic.clone()));
    ce.insert("pubsubname".into(), Value::String(ev.pubsub_name.clone()));
    put_trace(&mut ce, ev);
    ce
}

/// Puts `data` into `ce` as the runtime's envelope encodes it: the JSON value for JSON data,
/// a string for text (and for JSON content that does not parse), `data_base64` otherwise. An
/// unknown content type is treated as JSON, then text. Empty data is left out.
fn put_data(ce: &mut Map<String, Value>, content_type: &str, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let json = content_type.is_empty() || is_json_content_type(content_type);
    if json && let Ok(v) = serde_json::from_slice::<Value>(data) {
        ce.insert("data".into(), v);
        return;
    }
    if (json || is_text_content_type(content_type))
        && let Ok(s) = std::str::from_utf8(data)
    {
        ce.insert("data".into(), Value::String(s.to_owned()));
        return;
    }
    ce.insert(
        "data_base64".into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
    );
}

/// Trace fields from the message metadata; `traceparent` supersedes `traceid`, as in Dapr.
/// The publisher's own trace (the event's CloudEvents tracing extension) comes first.
fn put_trace(ce: &mut Map<String, Value>, ev: &TopicEvent) {
    let md = &ev.metadata;
    if let Some(tp) = &ev.trace_parent {
        ce.insert("traceparent".into(), Value::String(tp.clone()));
        ce.insert("traceid".into(), Value::String(tp.clone()));
    }
    if let Some(ts) = &ev.trace_state {
        ce.insert("tracestate".into(), Value::String(ts.clone()));
    }
    if let Some(id) = md.get("traceid") {
        ce.insert("traceid".into(), Value::String(id.clone()));
    }
    if let Some(tp) = md.get("traceparent") {
        ce.insert("traceparent".into(), Value::String(tp.clone()));
        ce.insert("traceid".into(), Value::String(tp.clone()));
    }
    if let Some(ts) = md.get("tracestate") {
        ce.insert("tracestate".into(), Value::String(ts.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_that_is_no_cloudevent_is_delivered_unchanged() {
        let raw = br#"{"raw": true, "n": 3}"#;
        let ev = decode(raw, "t", "ps", Metadata::new());
        assert_eq!(ev.data.as_ref(), raw);
        assert_eq!(ev.data_content_type, "application/json");
        assert!(!ev.id.is_empty());
        let ce = br#"{"specversion": "1.0", "id": "x", "data": {"n": 1}, "datacontenttype": "application/json"}"#;
        let ev = decode(ce, "t", "ps", Metadata::new());
        assert_eq!(
            (ev.id.as_str(), ev.data.as_ref()),
            ("x", br#"{"n":1}"#.as_slice())
        );
    }

    fn obj(b: &[u8]) -> Map<String, Value> {
        match serde_json::from_slice(b) {
            Ok(Value::Object(m)) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn wraps_json_text_and_binary() {
        let j = obj(&envelope("app1", "t", "ps", br#"{"a":1}"#, "application/json").expect("json"));
        assert_eq!(j["data"]["a"], 1);
        assert_eq!(j["specversion"], "1.0");
        assert_eq!(j["source"], "app1");
        assert_eq!(j["topic"], "t");
        assert_eq!(j["pubsubname"], "ps");
        assert!(!j["id"].as_str().unwrap_or("").is_empty());
        let t = obj(&envelope("a", "t", "ps", b"hello", "").expect("text"));
        assert_eq!(t["data"], "hello");
        assert_eq!(t["datacontenttype"], "text/plain");
        let b = obj(&envelope(
            "a",
            "t",
            "ps",
            &[0, 159, 146, 150],
            "application/octet-stream",
        )
        .expect("bin"));
        assert_eq!(b["data_base64"], "AJ+Slg==");
        let ev = decode(
            &serde_json::to_vec(&b).expect("enc"),
            "t",
            "ps",
            Metadata::new(),
        );
        assert_eq!(&ev.data[..], &[0, 159, 146, 150]);
    }

    #[test]
    fn passes_cloudevents_through() {
        let raw = br#"{"specversion":"1.0","id":"x1","source":"s","type":"my.type","data":"d","datacontenttype":"text/plain"}"#;
        let m = obj(&envelope("app", "t", "ps", raw, CLOUDEVENT_CONTENT_TYPE).expect("ce"));
        assert_eq!(m["id"], "x1");
        assert_eq!(m["type"], "my.type");
        let ev = decode(
            &serde_json::to_vec(&m).expect("enc"),
            "t",
            "ps",
            Metadata::new(),
        );
        assert_eq!(&ev.data[..], b"d");
        assert!(envelope("a", "t", "p", b"nope", CLOUDEVENT_CONTENT_TYPE).is_err());
    }
}
