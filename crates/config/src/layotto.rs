//! Walks a MOSN/Layotto JSON document into a [`Config`], collecting every problem.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use layotto_core::{ComponentSpec, Metadata};

use crate::Problems;

mod mosn;
mod refs;
use crate::node::{Node, child, index, json_string};
use crate::{
    AppConfig, ComponentEntry, Config, DEFAULT_CALLBACK_HOST, FlowControl, Kind, ListenAddr,
    Origin, Problem,
};
use mosn::is_off;

/// `grpc_config` sections upstream Layotto knows whose APIs this runtime does not serve yet,
/// with the API's name: configuring one is an error naming it, never silently ignored (a user
/// would otherwise learn at the first call that the store they configured is missing).
const NOT_YET_SECTIONS: [(&str, &str); 7] = [
    ("oss", "object storage (oss)"),
    ("sms", "SMS (sms)"),
    ("email", "email (email)"),
    ("cryption", "cryption"),
    ("phone", "phone"),
    ("delay_queue", "delay queue"),
    ("rpcs", "MOSN RPC invocation (rpcs)"),
];

/// `grpc_config` sections that configure Go code compiled into Layotto (custom components and
/// their extensions): there is no such code here, so they are accepted with a warning.
const GO_EXTENSION_SECTIONS: [&str; 2] = ["custom_component", "extends"];

/// Keys of the `app` section.
const APP_KEYS: [&str; 3] = ["app_id", "grpc_callback_host", "grpc_callback_port"];

pub(crate) fn parse(text: &str, source: &str) -> Result<Config, Problems> {
    match parse_partial(text, source) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, mut problems) => {
            if problems.is_empty() {
                problems.push(Problem {
                    file: source.to_owned(),
                    path: "$".to_owned(),
                    message: "configuration is incomplete".to_owned(),
                });
            }
            Err(Problems(problems))
        }
    }
}

pub(crate) fn parse_partial(text: &str, source: &str) -> (Option<Config>, Vec<Problem>) {
    let root: Node = match serde_json::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full);
            return (
                None,
                vec![Problem {
                    file: source.to_owned(),
                    path: format!("{}:{}", e.line(), e.column()),
                    message: format!("malformed JSON: {message}"),
                }],
            );
        }
    };
    let mut walker = Walker {
        file: source.to_owned(),
        problems: Vec::new(),
        warnings: Vec::new(),
        flow_control: None,
        metrics_port: None,
        tracing: None,
        resiliency: None,
    };
    let config = walker.document(&root);
    (config, walker.problems)
}

/// An object's entries with duplicated keys collapsed (the last one wins, as in Go's
/// `encoding/json`).
#[derive(Clone)]
struct Fields<'a> {
    entries: Vec<(&'a str, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn new(entries: &'a [(String, Node)]) -> Self {
        let mut out: Vec<(&'a str, &'a Node)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            if let Some(slot) = out.iter_mut().find(|(k, _)| *k == key.as_str()) {
                slot.1 = value;
            } else {
                out.push((key.as_str(), value));
            }
        }
        Self { entries: out }
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| *value)
    }

    /// Exact match first, then ASCII case-insensitive (Go's `encoding/json` matches field
    /// names case-insensitively, and upstream configs rely on it: `"Type": "redis"`).
    fn get_ci(&self, key: &str) -> Option<(&'a str, &'a Node)> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
            })
            .copied()
    }
}

/// The `grpc` listener filter found while walking.
struct GrpcFilter<'a> {
    listener_path: String,
    listener: Fields<'a>,
    filter_path: String,
    filter: Fields<'a>,
}

/// A listener carrying an `actuator_filter` stream filter.
struct Actuator<'a> {
    listener_path: String,
    listener: Fields<'a>,
}

struct Walker {
    file: String,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    flow_control: Option<FlowControl>,
    metrics_port: Option<u16>,
    tracing: Option<crate::TracingSpec>,
    /// The `resiliency` section of `grpc_config`.
    resiliency: Option<crate::resiliency::Resiliency>,
}

impl Walker {
    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// `node` as an object (reporting a problem otherwise), without duplicate checks.
    fn object<'a>(&mut self, node: &'a Node, path: &str, what: &str) -> Option<Fields<'a>> {
        match node {
            Node::Object(entries) => Some(Fields::new(entries)),
            other => {
                self.problem(
                    path,
                    format!("expected {what} (an object), found {}", other.describe()),
                );
                None
            }
        }
    }

    /// Like [`Walker::object`], also reporting duplicated keys; `null` counts as empty.
    fn strict_object<'a>(&mut self, node: &'a Node, path: &str, what: &str) -> Option<Fields<'a>> {
        match node {
            Node::Null => Some(Fields::new(&[])),
            Node::Object(entries) => {
                for (i, (key, _)) in entries.iter().enumerate() {
                    if entries[..i].iter().any(|(k, _)| k == key) {
                        self.problem(
                            &child(path, key),
                            format!(
                                "duplicate key {}; only the last one would take effect",
                                json_string(key)
                            ),
                        );
                    }
                }
                Some(Fields::new(entries))
            }
            other => {
                self.problem(
                    path,
                    format!("expected {what} (an object), found {}", other.describe()),
                );
                None
            }
        }
    }

    /// Member `key` of `fields` as an array: missing or `null` is empty unless `required`.
    fn array<'a>(
        &mut self,
        fields: &Fields<'a>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Option<&'a [Node]> {
        let path = child(path, key);
        match fields.get(key) {
            Some(Node::Array(items)) => Some(items),
            None | Some(Node::Null) if !required => Some(&[]),
            None => {
                self.problem(&path, "missing; expected an array");
                None
            }
            Some(other) => {
                self.problem(
                    &path,
                    format!("expected an array, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// The `type` of a MOSN filter object, if it is a string.
    fn filter_type<'a>(&mut self, filter: &Fields<'a>, path: &str) -> Option<&'a str> {
        match filter.get("type") {
            Some(Node::String(t)) => Some(t),
            None | Some(Node::Null) => None,
            Some(other) => {
                self.problem(
                    &child(path, "type"),
                    format!("expected a string, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn document(&mut self, root: &Node) -> Option<Config> {
        let root = self.object(root, "$", "a MOSN configuration")?;
        self.top_level(&root);
        let servers = self.array(&root, "servers", "$", true)?;
        let mut log_level = None;

        let mut grpc_filters: Vec<GrpcFilter<'_>> = Vec::new();
        let mut actuators: Vec<Actuator<'_>> = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            let server_path = index("$.servers", i);
            let Some(server) = self.object(server, &server_path, "a MOSN server") else {
                continue;
            };
            let level = self.server(&server, &server_path);
            log_level = log_level.or(level);
            let Some(listeners) = self.array(&server, "listeners", &server_path, true) else {
                continue;
            };
            for (j, listener_node) in listeners.iter().enumerate() {
                let listener_path = index(&child(&server_path, "listeners"), j);
                self.listener(
                    listener_node,
                    listener_path,
                    &mut grpc_filters,
                    &mut actuators,
                );
            }
        }

        let mut grpc_filters = grpc_filters.into_iter();
        let Some(grpc) = grpc_filters.next() else {
            self.problem(
                "$.servers",
                "no listener has a filter of type \"grpc\"; exactly one is required \
                 (its config.grpc_config configures the runtime)",
            );
            return None;
        };
        for extra in grpc_filters {
            self.problem(
                &extra.filter_path,
                format!(
                    "another filter of type \"grpc\" (the first is at {}); exactly one is required",
                    grpc.filter_path
                ),
            );
        }

        let grpc_addr = self.listen_addr(&grpc.listener, &grpc.listener_path);
        let actuator = self.actuator(&actuators, &grpc.listener_path, grpc_addr.as_ref());
        let (app, components) = self.grpc_filter(&grpc.filter, &grpc.filter_path)?;
        let mut components = components;
        components.sort_by(|a, b| (a.kind, &a.spec.name).cmp(&(b.kind, &b.spec.name)));
        let grpc = grpc_addr?;
        Some(Config {
            source: self.file.clone(),
            grpc,
            actuator,
            app,
            components,
            warnings: std::mem::take(&mut self.warnings),
            flow_control: self.flow_control.take(),
            metrics_port: self.metrics_port.take(),
            tracing: self.tracing.take(),
            log_level,
            secret_scopes: Vec::new(),
            resiliency: self.resiliency.take().unwrap_or_default(),
            http_endpoints: Vec::new(),
            subscriptions: Vec::new(),
        })
    }

    fn listener<'a>(
        &mut self,
        node: &'a Node,
        path: String,
        grpc_filters: &mut Vec<GrpcFilter<'a>>,
        actuators: &mut Vec<Actuator<'a>>,
    ) {
        let Some(listener) = self.object(node, &path, "a MOSN listener") else {
            return;
        };
        // The actuator listener carries MOSN's HTTP `proxy` filter beside its `actuator_filter`:
        // that proxy is what serves the actuator, so it earns no warning.
        let actuator_listener = matches!(listener.get("stream_filters"), Some(Node::Array(items))
            if items.iter().any(|f| matches!(f, Node::Object(e)
                if e.iter().any(|(k, v)| k == "type" && *v == Node::String("actuator_filter".to_owned())))));
        if let Some(chains) = self.array(&listener, "filter_chains", &path, false) {
            for (k, chain) in chains.iter().enumerate() {
                let chain_path = index(&child(&path, "filter_chains"), k);
                let Some(chain) = self.object(chain, &chain_path, "a MOSN filter chain") else {
                    continue;
                };
                let Some(filters) = self.array(&chain, "filters", &chain_path, false) else {
                    continue;
                };
                for (m, filter) in filters.iter().enumerate() {
                    let filter_path = index(&child(&chain_path, "filters"), m);
                    let Some(filter) = self.object(filter, &filter_path, "a MOSN filter") else {
                        continue;
                    };
                    match self.filter_type(&filter, &filter_path) {
                        Some("grpc") => grpc_filters.push(GrpcFilter {
                            listener_path: path.clone(),
                            listener: listener.clone(),
                            filter_path,
                            filter,
                        }),
                        Some("proxy") if actuator_listener => {}
                        Some(t @ ("proxy" | "tcpcopy")) => self.warn(
                            &filter_path,
                            format!(
                                "MOSN's {} network filter is not served: only the grpc filter's \
                                 runtime API is (this filter is ignored)",
                                json_string(t)
                            ),
                        ),
                        Some(other) => self.warn(
                            &filter_path,
                            format!(
                                "unknown MOSN network filter {} is ignored",
                                json_string(other)
                            ),
                        ),
                        None => {}
                    }
                }
            }
        }
        let mut is_actuator = false;
        if let Some(stream_filters) = self.array(&listener, "stream_filters", &path, false) {
            for (k, filter) in stream_filters.iter().enumerate() {
                let filter_path = index(&child(&path, "stream_filters"), k);
                let Some(filter) = self.object(filter, &filter_path, "a MOSN stream filter") else {
                    continue;
                };
                match self.filter_type(&filter, &filter_path) {
                    Some("actuator_filter") => is_actuator = true,
                    Some("flowControlFilter") => self.flow_control_filter(&filter, &filter_path),
                    // Every gRPC listener records Dapr's gRPC server metrics; the filter only
                    // asks for that.
                    Some("grpc_metric") => {}
                    Some(other) => self.warn(
                        &filter_path,
                        format!(
                            "unknown MOSN stream filter {} is ignored",
                            json_string(other)
                        ),
                    ),
                    None => {}
                }
            }
        }
        if is_actuator {
            actuators.push(Actuator {
                listener_path: path,
                listener,
            });
        }
    }

    /// The bind address of a listener: `address`, interpreted per `network`.
    fn listen_addr(&mut self, listener: &Fields<'_>, path: &str) -> Option<ListenAddr> {
        let network = match listener.get("network") {
            None | Some(Node::Null) => "tcp",
            Some(Node::String(n)) => n.as_str(),
            Some(other) => {
                self.problem(
                    &child(path, "network"),
                    format!(
                        "expected a string (\"tcp\" or \"unix\"), found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        };
        let address_path = child(path, "address");
        let address = match listener.get("address") {
            Some(Node::String(a)) => a.as_str(),
            None | Some(Node::Null) => {
                self.problem(&address_path, "missing; the listener needs an address");
                return None;
            }
            Some(other) => {
                self.problem(
                    &address_path,
                    format!("expected a string, found {}", other.describe()),
                );
                return None;
            }
        };
        match network {
            "" | "tcp" | "tcp4" | "tcp6" => match parse_tcp(address) {
                Ok(addr) => Some(ListenAddr::Tcp(addr)),
                Err(mut message) => {
                    if address.starts_with('/') {
                        message.push_str(
                            "; for a unix domain socket set \"network\": \"unix\" on the listener",
                        );
                    }
                    self.problem(&address_path, message);
                    None
                }
            },
            "unix" => {
                if address.is_empty() {
                    self.problem(&address_path, "empty unix socket path");
                    None
                } else {
                    Some(ListenAddr::Unix(PathBuf::from(address)))
                }
            }
            other => {
                self.problem(
                    &child(path, "network"),
                    format!(
                        "unsupported network {}; expected \"tcp\" or \"unix\"",
                        json_string(other)
                    ),
                );
                None
            }
        }
    }

    fn actuator(
        &mut self,
        actuators: &[Actuator<'_>],
        grpc_listener_path: &str,
        grpc: Option<&ListenAddr>,
    ) -> Option<SocketAddr> {
        let first = actuators.first()?;
        for extra in &actuators[1..] {
            self.problem(
                &extra.listener_path,
                format!(
                    "another listener with an \"actuator_filter\" (the first is {}); at most one \
                     is supported",
                    first.listener_path
                ),
            );
        }
        if first.listener_path == grpc_listener_path {
            self.problem(
                &child(&first.listener_path, "stream_filters"),
                "the gRPC listener cannot also serve the actuator; give the \"actuator_filter\" \
                 its own listener",
            );
            return None;
        }
        match self.listen_addr(&first.listener, &first.listener_path)? {
            ListenAddr::Tcp(addr) => {
                if grpc == Some(&ListenAddr::Tcp(addr)) {
                    self.problem(
                        &child(&first.listener_path, "address"),
                        format!("the actuator address {addr} is also the gRPC address"),
                    );
                }
                Some(addr)
            }
            ListenAddr::Unix(_) => {
                self.problem(
                    &child(&first.listener_path, "network"),
                    "the actuator listener must be TCP",
                );
                None
            }
        }
    }

    /// `config.grpc_config` of the grpc filter.
    fn grpc_filter(
        &mut self,
        filter: &Fields<'_>,
        path: &str,
    ) -> Option<(AppConfig, Vec<ComponentEntry>)> {
        let config_path = child(path, "config");
        let config = match filter.get("config") {
            Some(config) => self.object(config, &config_path, "the grpc filter config")?,
            None => {
                self.problem(
                    &config_path,
                    "missing; the grpc filter needs config.grpc_config",
                );
                return None;
            }
        };
        let grpc_path = child(&config_path, "grpc_config");
        let Some(grpc_config) = config.get("grpc_config") else {
            self.problem(
                &grpc_path,
                "missing; the grpc filter needs the runtime configuration",
            );
            return None;
        };
        let grpc_config =
            self.strict_object(grpc_config, &grpc_path, "the runtime configuration")?;

        let mut app = AppConfig::default();
        let mut components = Vec::new();
        for &(key, value) in &grpc_config.entries {
            let section_path = child(&grpc_path, key);
            if key == "app" {
                app = self.app(value, &section_path);
            } else if key == "resiliency" {
                let section = serde_json::from_str(&value.to_compact_json()).unwrap_or_default();
                match crate::resiliency::parse_resiliency_section(
                    &section,
                    &self.file,
                    &section_path,
                ) {
                    Ok(r) => self.resiliency = Some(r),
                    Err(p) => self.problems.extend(p),
                }
            } else if let Some(kind) = Kind::from_section(key) {
                self.section(kind, value, &section_path, &mut components);
            } else if let Some((_, api)) = NOT_YET_SECTIONS.iter().find(|(k, _)| *k == key) {
                self.problem(
                    &section_path,
                    format!("Layotto's {api} API is not supported yet by layotto-rs"),
                );
            } else if GO_EXTENSION_SECTIONS.contains(&key) {
                if !is_off(value) {
                    self.warn(
                        &section_path,
                        format!(
                            "{} configures Go code compiled into Layotto; layotto-rs has none, \
                             so it has no effect",
                            json_string(key)
                        ),
                    );
                }
            } else if key == "files" {
                self.problem(
                    &section_path,
                    "unknown section \"files\" in grpc_config: Layotto's file section is \
                     \"file\" (Layotto itself never reads \"files\")",
                );
            } else {
                let known: Vec<&str> = ["app", "resiliency"]
                    .into_iter()
                    .chain(Kind::ALL.iter().map(|k| k.section()))
                    .collect();
                self.problem(
                    &section_path,
                    format!(
                        "unknown section {} in grpc_config; known sections: {}",
                        json_string(key),
                        known.join(", ")
                    ),
                );
            }
        }
        Some((app, components))
    }

    fn app(&mut self, node: &Node, path: &str) -> AppConfig {
        let mut app = AppConfig::default();
        let Some(fields) = self.strict_object(node, path, "the app section") else {
            return app;
        };
        for &(key, value) in &fields.entries {
            let key_path = child(path, key);
            match (key, value) {
                (_, Node::Null) if APP_KEYS.contains(&key) => {}
                ("app_id", Node::String(id)) => app.app_id.clone_from(id),
                ("grpc_callback_host", Node::String(host)) => {
                    if !host.is_empty() {
                        app.grpc_callback_host.clone_from(host);
                    }
                }
                ("grpc_callback_port", Node::Number(n)) => match n.as_u64() {
                    Some(0) => {}
                    Some(port) => match u16::try_from(port) {
                        Ok(port) => app.grpc_callback_port = Some(port),
                        Err(_) => self.problem(
                            &key_path,
                            format!("port {port} is out of range; expected 1..65535"),
                        ),
                    },
                    None => self.problem(
                        &key_path,
                        format!("expected an integer port 1..65535, found {n}"),
                    ),
                },
                ("grpc_callback_port", other) => self.problem(
                    &key_path,
                    format!(
                        "expected an integer port 1..65535, found {}",
                        other.describe()
                    ),
                ),
                ("app_id" | "grpc_callback_host", other) => self.problem(
                    &key_path,
                    format!("expected a string, found {}", other.describe()),
                ),
                _ => self.problem(
                    &key_path,
                    format!(
                        "unknown key {} in app; known keys: {}",
                        json_string(key),
                        APP_KEYS.join(", ")
                    ),
                ),
            }
        }
        if app.grpc_callback_host.is_empty() {
            DEFAULT_CALLBACK_HOST.clone_into(&mut app.grpc_callback_host);
        }
        app
    }

    fn section(&mut self, kind: Kind, node: &Node, path: &str, out: &mut Vec<ComponentEntry>) {
        let what = format!("a map of {kind} component names to components");
        let Some(fields) = self.strict_object(node, path, &what) else {
            return;
        };
        for &(name, value) in &fields.entries {
            if let Some(entry) = self.component(kind, name, value, child(path, name)) {
                out.push(entry);
            }
        }
    }

    fn component(
        &mut self,
        kind: Kind,
        name: &str,
        node: &Node,
        path: String,
    ) -> Option<ComponentEntry> {
        let Node::Object(_) = node else {
            self.problem(
                &path,
                format!(
                    "expected a component object such as {{\"type\": \"in-memory\", \"metadata\": {{}}}}, \
                     found {}",
                    node.describe()
                ),
            );
            return None;
        };
        let fields = self.strict_object(node, &path, "a component")?;
        let mut ok = true;
        if name.is_empty() {
            self.problem(&path, "component name must not be empty");
            ok = false;
        }

        let type_field = fields.get_ci("type");
        let type_ = match type_field {
            Some((_, Node::String(t))) if !t.is_empty() => t.clone(),
            // Older Layotto configs use the map key as both name and type.
            None | Some((_, Node::Null | Node::String(_))) => name.to_owned(),
            Some((key, other)) => {
                self.problem(
                    &child(&path, key),
                    format!(
                        "expected the component type (a string), found {}",
                        other.describe()
                    ),
                );
                ok = false;
                String::new()
            }
        };

        let metadata_field = fields.get_ci("metadata");
        let mut metadata = Metadata::new();
        if let Some((key, value)) = metadata_field {
            let metadata_path = child(&path, key);
            // OSS-style file stores write their metadata as an array of objects (one per
            // bucket/endpoint, `mosn/layotto:components/file`); one entry reads as an object.
            let (value, metadata_path) = match value {
                Node::Array(items) if items.len() == 1 => (&items[0], metadata_path),
                Node::Array(items) if items.is_empty() => (&Node::Null, metadata_path),
                Node::Array(items) => {
                    self.problem(
                        &metadata_path,
                        format!(
                            "metadata lists {} entries; layotto-rs reads one (several \
                             endpoints in one file store are not supported yet)",
                            items.len()
                        ),
                    );
                    return None;
                }
                other => (other, metadata_path),
            };
            match self.strict_object(value, &metadata_path, "the component metadata") {
                Some(entries) => {
                    for &(k, v) in &entries.entries {
                        metadata.insert(k.to_owned(), metadata_value(v));
                    }
                }
                None => ok = false,
            }
        }
        let reserved = [type_field.map(|f| f.0), metadata_field.map(|f| f.0)];
        let mut secret_refs = Vec::new();
        let mut component_refs = Vec::new();
        for &(key, value) in &fields.entries {
            if reserved.contains(&Some(key)) {
                continue;
            }
            // Layotto's references (`config_ref_example.json`): read, not metadata.
            if key.eq_ignore_ascii_case("secret_ref") {
                ok &= self.secret_refs(value, &child(&path, key), &mut secret_refs);
                continue;
            }
            if key.eq_ignore_ascii_case("component_ref") {
                ok &= self.component_refs(value, &child(&path, key), &mut component_refs);
                continue;
            }
            if metadata.contains_key(key) {
                self.problem(
                    &child(&path, key),
                    format!(
                        "{} is set both here and in metadata; set it once",
                        json_string(key)
                    ),
                );
                ok = false;
                continue;
            }
            metadata.insert(key.to_owned(), metadata_value(value));
        }

        ok.then(|| ComponentEntry {
            kind,
            spec: ComponentSpec {
                name: name.to_owned(),
                type_,
                metadata,
                version: String::new(),
            },
            path,
            file: self.file.clone(),
            origin: Origin::Layotto,
            secret_refs,
            secret_store: None,
            component_refs,
        })
    }
}

/// A metadata value as a string: strings as-is, `null` as empty, anything else as compact
/// JSON (`6379` -> `"6379"`, `{"k":1}` -> `"{\"k\":1}"`).
fn metadata_value(node: &Node) -> String {
    match node {
        Node::String(s) => s.clone(),
        Node::Null => String::new(),
        other => other.to_compact_json(),
    }
}

/// Parses a TCP listen address without DNS: `ip:port`, `[ipv6]:port`, `localhost:port`
/// (127.0.0.1) or `:port` (0.0.0.0, as Go's `net.Listen` does).
pub(crate) fn parse_tcp(address: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let quoted = json_string(address);
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "address {quoted} is not \"host:port\" (e.g. \"127.0.0.1:34904\")"
        ));
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!(
            "address {quoted} has an invalid port {}; expected 0..65535",
            json_string(port)
        ));
    };
    let ip = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "address {quoted}: an IPv6 host needs brackets, e.g. \"[::1]:34904\""
        ));
    } else {
        return Err(format!(
            "address {quoted}: host {} is neither an IP address nor \"localhost\" \
             (host names are not resolved)",
            json_string(host)
        ));
    };
    Ok(SocketAddr::new(ip, port))
}
