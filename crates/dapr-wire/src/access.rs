//! Dapr's API allow and deny lists (`spec.api.allowed` / `spec.api.denied` of the
//! Configuration resource) and which API each route and rpc belongs to, as daprd v1.14 decides
//! (`dapr/dapr:pkg/api/http/endpoints`, `pkg/api/grpc/endpoints.go`).
//!
//! - A rule is `(name, version, protocol)`; it applies to its protocol only.
//! - HTTP: a route is denied when a denied rule matches it, else allowed when there is no
//!   allowed rule or one matches. A rule matches by its group (`name` `state`, `version` `v1`
//!   or `v1alpha1`) or, as daprd also reads it, when `version/name` is a prefix of the route's
//!   `v1.0/state/{storeName}/{key}` template. `healthz` is always allowed.
//! - HTTP rules are decided on the route the router matched (its template), never on the raw
//!   path, so no spelling of a path reaches a closed route.
//! - gRPC: each `name.version` (`state.v1`) names a fixed list of `dapr.proto.runtime.v1.Dapr`
//!   rpcs; only rpcs under `/dapr.proto.runtime.` are checked, and rules that name no list are
//!   without effect. Layotto's `spec.proto.runtime.v1` rpcs follow the same rules (an
//!   extension: daprd has no such API to guard): those that do what a Dapr API does under its
//!   name (`SaveConfiguration` under `configuration.v1`, `TryLock` and `LockKeepAlive` under
//!   `lock.v1alpha1`...), the others under names of their own: `sequencer.v1` (`GetNextId`),
//!   `file.v1` (the file rpcs), `hello.v1` (`SayHello`), `lifecycle.v1`
//!   (`ApplyConfiguration`). As for Dapr's, with an allow list an rpc it does not name is
//!   closed.

use std::collections::HashSet;

/// One HTTP endpoint of daprd: URL version, route template, group name and group version.
struct HttpEndpoint {
    url_version: &'static str,
    route: &'static str,
    group: &'static str,
    group_version: &'static str,
}

const fn ep(
    url_version: &'static str,
    route: &'static str,
    group: &'static str,
    group_version: &'static str,
) -> HttpEndpoint {
    HttpEndpoint {
        url_version,
        route,
        group,
        group_version,
    }
}

/// daprd 1.14's HTTP endpoints that this sidecar serves (routes it does not serve need no
/// rule: they answer 404 anyway). Order matters where templates overlap: the first match wins.
const HTTP_ENDPOINTS: &[HttpEndpoint] = &[
    ep("v1.0", "healthz", "healthz", "v1"),
    ep("v1.0", "healthz/outbound", "healthz", "v1"),
    ep("v1.0", "state/{storeName}/bulk", "state", "v1"),
    ep("v1.0", "state/{storeName}/transaction", "state", "v1"),
    ep("v1.0", "state/{storeName}/{key}", "state", "v1"),
    ep("v1.0", "state/{storeName}", "state", "v1"),
    ep(
        "v1.0-alpha1",
        "state/{storeName}/query",
        "state",
        "v1alpha1",
    ),
    ep("v1.0", "publish/{pubsubname}/*", "publish", "v1"),
    ep(
        "v1.0-alpha1",
        "publish/bulk/{pubsubname}/*",
        "publish",
        "v1alpha1",
    ),
    ep("v1.0", "bindings/{name}", "bindings", "v1"),
    ep("v1.0", "secrets/{secretStoreName}/bulk", "secrets", "v1"),
    ep("v1.0", "secrets/{secretStoreName}/{key}", "secrets", "v1"),
    ep(
        "v1.0-alpha1",
        "configuration/{storeName}/subscribe",
        "configuration",
        "v1alpha1",
    ),
    ep(
        "v1.0-alpha1",
        "configuration/{storeName}/{configurationSubscribeID}/unsubscribe",
        "configuration",
        "v1alpha1",
    ),
    ep(
        "v1.0-alpha1",
        "configuration/{storeName}",
        "configuration",
        "v1alpha1",
    ),
    ep(
        "v1.0",
        "configuration/{storeName}/subscribe",
        "configuration",
        "v1",
    ),
    ep(
        "v1.0",
        "configuration/{storeName}/{configurationSubscribeID}/unsubscribe",
        "configuration",
        "v1",
    ),
    ep("v1.0", "configuration/{storeName}", "configuration", "v1"),
    ep("v1.0-alpha1", "lock/{storeName}", "lock", "v1alpha1"),
    ep("v1.0-alpha1", "unlock/{storeName}", "unlock", "v1alpha1"),
    ep("v1.0", "invoke/*", "invoke", "v1"),
    ep("v1.0", "metadata", "metadata", "v1"),
    ep("v1.0", "metadata/{key}", "metadata", "v1"),
    ep("v1.0", "shutdown", "shutdown", "v1"),
];

/// The Dapr rpcs each gRPC rule name (`name.version`) covers (daprd 1.14's table; rpcs this
/// sidecar does not serve are listed too, so an allow list means the same as for daprd).
const GRPC_ENDPOINTS: &[(&str, &[&str])] = &[
    ("invoke.v1", &["InvokeService"]),
    (
        "state.v1",
        &[
            "GetState",
            "GetBulkState",
            "SaveState",
            "DeleteState",
            "DeleteBulkState",
            "ExecuteStateTransaction",
        ],
    ),
    ("state.v1alpha1", &["QueryStateAlpha1"]),
    // `BulkPublishEvent` joined this list after 1.14; it is served here, so it is guarded.
    ("publish.v1", &["PublishEvent", "BulkPublishEvent"]),
    ("publish.v1alpha1", &["BulkPublishEventAlpha1"]),
    ("bindings.v1", &["InvokeBinding"]),
    ("secrets.v1", &["GetSecret", "GetBulkSecret"]),
    (
        "actors.v1",
        &[
            "RegisterActorTimer",
            "UnregisterActorTimer",
            "RegisterActorReminder",
            "UnregisterActorReminder",
            "GetActorState",
            "ExecuteActorStateTransaction",
            "InvokeActor",
        ],
    ),
    ("metadata.v1", &["GetMetadata", "SetMetadata"]),
    (
        "configuration.v1alpha1",
        &[
            "GetConfigurationAlpha1",
            "SubscribeConfigurationAlpha1",
            "UnsubscribeConfigurationAlpha1",
        ],
    ),
    (
        "configuration.v1",
        &[
            "GetConfiguration",
            "SubscribeConfiguration",
            "UnsubscribeConfiguration",
        ],
    ),
    ("lock.v1alpha1", &["TryLockAlpha1"]),
    ("unlock.v1alpha1", &["UnlockAlpha1"]),
    (
        "subtlecrypto.v1alpha1",
        &[
            "SubtleGetKeyAlpha1",
            "SubtleEncryptAlpha1",
            "SubtleDecryptAlpha1",
            "SubtleSignAlpha1",
            "SubtleVerifyAlpha1",
            "SubtleWrapKeyAlpha1",
            "SubtleUnwrapKeyAlpha1",
        ],
    ),
    ("crypto.v1alpha1", &["EncryptAlpha1", "DecryptAlpha1"]),
    (
        "workflows.v1alpha1",
        &[
            "StartWorkflowAlpha1",
            "GetWorkflowAlpha1",
            "TerminateWorkflowAlpha1",
            "RaiseEventWorkflowAlpha1",
            "PurgeWorkflowAlpha1",
            "PauseWorkflowAlpha1",
            "ResumeWorkflowAlpha1",
        ],
    ),
    (
        "workflows.v1beta1",
        &[
            "StartWorkflowBeta1",
            "GetWorkflowBeta1",
            "TerminateWorkflowBeta1",
            "RaiseEventWorkflowBeta1",
            "PurgeWorkflowBeta1",
            "PauseWorkflowBeta1",
            "ResumeWorkflowBeta1",
        ],
    ),
    (
        "jobs.v1alpha1",
        &["ScheduleJobAlpha1", "DeleteJobAlpha1", "GetJobAlpha1"],
    ),
    ("shutdown.v1", &["Shutdown"]),
    ("subscribe.v1alpha1", &["SubscribeTopicEventsAlpha1"]),
];

/// Layotto's rpcs (`spec.proto.runtime.v1.Runtime` and `.Lifecycle`) with their rule name.
const LAYOTTO_ENDPOINTS: &[(&str, &str)] = &[
    ("Runtime/InvokeService", "invoke.v1"),
    ("Runtime/GetState", "state.v1"),
    ("Runtime/GetBulkState", "state.v1"),
    ("Runtime/SaveState", "state.v1"),
    ("Runtime/DeleteState", "state.v1"),
    ("Runtime/DeleteBulkState", "state.v1"),
    ("Runtime/ExecuteStateTransaction", "state.v1"),
    ("Runtime/PublishEvent", "publish.v1"),
    ("Runtime/SubscribeTopicEvents", "subscribe.v1alpha1"),
    ("Runtime/InvokeBinding", "bindings.v1"),
    ("Runtime/GetSecret", "secrets.v1"),
    ("Runtime/GetBulkSecret", "secrets.v1"),
    ("Runtime/GetConfiguration", "configuration.v1"),
    ("Runtime/SaveConfiguration", "configuration.v1"),
    ("Runtime/DeleteConfiguration", "configuration.v1"),
    ("Runtime/SubscribeConfiguration", "configuration.v1"),
    ("Runtime/TryLock", "lock.v1alpha1"),
    ("Runtime/LockKeepAlive", "lock.v1alpha1"),
    ("Runtime/Unlock", "unlock.v1alpha1"),
    ("Runtime/GetNextId", "sequencer.v1"),
    ("Runtime/GetFile", "file.v1"),
    ("Runtime/PutFile", "file.v1"),
    ("Runtime/ListFile", "file.v1"),
    ("Runtime/DelFile", "file.v1"),
    ("Runtime/GetFileMeta", "file.v1"),
    ("Runtime/SayHello", "hello.v1"),
    ("Lifecycle/ApplyConfiguration", "lifecycle.v1"),
];

const DAPR_PREFIX: &str = "/dapr.proto.runtime.";
const DAPR_SERVICE: &str = "/dapr.proto.runtime.v1.Dapr/";
const LAYOTTO_PREFIX: &str = "/spec.proto.runtime.v1.";

/// The message of a denied gRPC call's `ErrorInfo` (`http.error_message`); the status is
/// `UNIMPLEMENTED` with message [`GRPC_DENIED_STATUS_MESSAGE`], as daprd answers.
pub const GRPC_DENIED_DETAIL: &str = "requested endpoint is not available";
/// The status message of a denied gRPC call (Go's `http.StatusText(501)`).
pub const GRPC_DENIED_STATUS_MESSAGE: &str = "Not Implemented";

/// The compiled allow and deny lists of both protocols.
#[derive(Debug, Clone, Default)]
pub struct ApiAccess {
    http_allowed: HashSet<String>,
    http_denied: HashSet<String>,
    /// Rule names (`state.v1`) that name a known list.
    grpc_allowed: HashSet<String>,
    grpc_denied: HashSet<String>,
}

impl ApiAccess {
    /// The lists from `allowed` and `denied` rules, each `(name, version, protocol)` with
    /// `protocol` `http` or `grpc` (other protocols apply to neither).
    pub fn new<'a>(
        allowed: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
        denied: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Self {
        let mut a = Self::default();
        for (set_http, set_grpc, rules) in [
            (
                &mut a.http_allowed,
                &mut a.grpc_allowed,
                allowed.into_iter().collect::<Vec<_>>(),
            ),
            (
                &mut a.http_denied,
                &mut a.grpc_denied,
                denied.into_iter().collect(),
            ),
        ] {
            for (name, version, protocol) in rules {
                if protocol.eq_ignore_ascii_case("http") {
                    set_http.insert(format!("{version}/{name}"));
                } else if protocol == "grpc" {
                    let key = format!("{name}.{version}");
                    let known = GRPC_ENDPOINTS.iter().any(|(k, _)| *k == key)
                        || LAYOTTO_ENDPOINTS.iter().any(|(_, k)| *k == key);
                    if known {
                        set_grpc.insert(key);
                    }
                }
            }
        }
        a
    }

    /// Whether no rule restricts anything.
    pub fn is_open(&self) -> bool {
        self.http_allowed.is_empty()
            && self.http_denied.is_empty()
            && self.grpc_allowed.is_empty()
            && self.grpc_denied.is_empty()
    }

    /// Whether the route the router matched, its template `route` (`/v1.0/state/{store}/{key}`,
    /// parameters in braces, a catch-all `{*rest}`), is served. A route of no known endpoint
    /// is closed by any rule (daprd would not have it).
    pub fn http_allows(&self, route: &str) -> bool {
        if self.http_allowed.is_empty() && self.http_denied.is_empty() {
            return true;
        }
        let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        match HTTP_ENDPOINTS.iter().find(|e| matches_route(e, &segments)) {
            Some(e) => self.endpoint_allowed(e),
            None => false,
        }
    }

    /// Whether service invocation (`/v1.0/invoke/...`) is served: daprd's fallback route for
    /// paths it does not serve.
    pub fn http_invoke_allowed(&self) -> bool {
        self.http_allows("/v1.0/invoke/{app_id}/method/{*method}")
    }

    fn endpoint_allowed(&self, e: &HttpEndpoint) -> bool {
        if e.group == "healthz" {
            return true;
        }
        let matches = |rules: &HashSet<String>| {
            rules.contains(&format!("{}/{}", e.group_version, e.group))
                || rules
                    .iter()
                    .any(|k| format!("{}/{}", e.url_version, e.route).starts_with(k.as_str()))
        };
        if matches(&self.http_denied) {
            return false;
        }
        self.http_allowed.is_empty() || matches(&self.http_allowed)
    }

    /// Whether the gRPC call of `full_method` (`/dapr.proto.runtime.v1.Dapr/GetState`) is
    /// served.
    pub fn grpc_allows(&self, full_method: &str) -> bool {
        if self.grpc_allowed.is_empty() && self.grpc_denied.is_empty() {
            return true;
        }
        let rule = if let Some(rpc) = full_method.strip_prefix(DAPR_SERVICE) {
            GRPC_ENDPOINTS
                .iter()
                .find(|(_, rpcs)| rpcs.contains(&rpc))
                .map(|(k, _)| *k)
        } else if let Some(rpc) = full_method.strip_prefix(LAYOTTO_PREFIX) {
            LAYOTTO_ENDPOINTS
                .iter()
                .find(|(m, _)| *m == rpc)
                .map(|(_, k)| *k)
        } else if full_method.starts_with(DAPR_PREFIX) {
            None
        } else {
            // Not an API of the runtime (health, reflection, a proxied app service).
            return true;
        };
        if rule.is_some_and(|r| self.grpc_denied.contains(r)) {
            return false;
        }
        self.grpc_allowed.is_empty() || rule.is_some_and(|r| self.grpc_allowed.contains(r))
    }
}

/// Whether `segments` (the path split at `/`, version first) match the endpoint's template:
/// `{x}` is one segment, a trailing `*` one or more.
fn matches_route(e: &HttpEndpoint, segments: &[&str]) -> bool {
    let Some((version, rest)) = segments.split_first() else {
        return false;
    };
    if *version != e.url_version {
        return false;
    }
    let template: Vec<&str> = e.route.split('/').collect();
    if template.last() == Some(&"*") {
        let fixed = template.len() - 1;
        return rest.len() > fixed && fits(&template[..fixed], &rest[..fixed]);
    }
    rest.len() == template.len() && fits(&template, rest)
}

fn fits(template: &[&str], segments: &[&str]) -> bool {
    template
        .iter()
        .zip(segments)
        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_rules_as_daprd() {
        // Deny wins over allow: only the alpha query route of `state` stays.
        let a = ApiAccess::new(
            [("state", "v1", "http"), ("state", "v1alpha1", "http")],
            [("state", "v1", "http")],
        );
        assert!(!a.http_allows("/v1.0/state/{store}/{key}"));
        assert!(a.http_allows("/v1.0-alpha1/state/{store}/query"));
        assert!(!a.http_allows("/v1.0/publish/{pubsub}/{*topic}"));
        assert!(a.http_allows("/v1.0/healthz"));
        assert!(!a.http_invoke_allowed());
        // A route no endpoint knows is closed once there are rules.
        assert!(!a.http_allows("/v1.0/unknown/{x}"));
        // The URL spelling is a prefix of the route template.
        let a = ApiAccess::new(
            [],
            [
                ("secrets", "v1.0", "HTTP"),
                ("bulk", "v1.0-alpha1/publish", "http"),
            ],
        );
        assert!(!a.http_allows("/v1.0/secrets/{store}/{key}"));
        assert!(!a.http_allows("/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}"));
        assert!(a.http_allows("/v1.0/publish/{pubsub}/{*topic}"));
        assert!(a.http_allows("/v1.0/state/{store}/{key}"));
        // gRPC rules do not touch HTTP.
        let a = ApiAccess::new([("state", "v1", "grpc")], []);
        assert!(a.http_allows("/v1.0/secrets/{store}/{key}"));
    }

    #[test]
    fn grpc_rules_as_daprd() {
        let a = ApiAccess::new([("state", "v1", "grpc")], [("state", "v1", "http")]);
        assert!(a.grpc_allows("/dapr.proto.runtime.v1.Dapr/GetState"));
        assert!(!a.grpc_allows("/dapr.proto.runtime.v1.Dapr/PublishEvent"));
        assert!(!a.grpc_allows("/spec.proto.runtime.v1.Runtime/PublishEvent"));
        assert!(a.grpc_allows("/spec.proto.runtime.v1.Runtime/GetState"));
        // Under an allow list, Layotto's own APIs need their own names; other services are not
        // the runtime's to guard.
        assert!(!a.grpc_allows("/spec.proto.runtime.v1.Runtime/GetNextId"));
        assert!(!a.grpc_allows("/spec.proto.runtime.v1.Lifecycle/ApplyConfiguration"));
        assert!(!a.grpc_allows("/dapr.proto.runtime.v1.Dapr/SomethingNew"));
        assert!(a.grpc_allows("/grpc.health.v1.Health/Check"));
        let a = ApiAccess::new(
            [("sequencer", "v1", "grpc")],
            [("lock", "v1alpha1", "grpc")],
        );
        assert!(a.grpc_allows("/spec.proto.runtime.v1.Runtime/GetNextId"));
        assert!(!a.grpc_allows("/spec.proto.runtime.v1.Runtime/LockKeepAlive"));
        // Exact names, no prefixes; a rule naming no list has no effect.
        let a = ApiAccess::new([("state", "v1.0", "grpc")], [("lock", "v1alpha1", "grpc")]);
        assert!(a.grpc_allows("/dapr.proto.runtime.v1.Dapr/GetState"));
        assert!(!a.grpc_allows("/dapr.proto.runtime.v1.Dapr/TryLockAlpha1"));
        assert!(!a.grpc_allows("/spec.proto.runtime.v1.Runtime/TryLock"));
        assert!(ApiAccess::new([("state", "v1", "GRPC")], []).is_open());
    }
}
