//! Dapr's `Resiliency` resources (`apiVersion: dapr.io/v1alpha1`, `kind: Resiliency`; the Dapr
//! docs pages "Resiliency policies" and "Targets", `dapr/dapr:pkg/apis/resiliency/v1alpha1`),
//! read from the resources path beside the components.
//!
//! `spec.policies` names timeouts, retries and circuit breakers; `spec.targets.apps.<app-id>`
//! picks them for calls to that app (and to an `HTTPEndpoint` of that name),
//! `spec.targets.components.<name>.outbound` for calls to that component and `.inbound` for
//! what it delivers to the app; policies named by Dapr's default templates (`DefaultRetryPolicy`,
//! `DefaultAppTimeoutPolicy`, `DefaultStatestoreComponentOutboundRetryPolicy`, ...) apply to
//! targets no resource names. Several resources applying to this app merge, a later file
//! overriding a policy or target of the same name. `actors` targets are reported as problems
//! (there are no actors here) rather than ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::Problem;

/// One retry policy (`spec.policies.retries.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `policy: exponential` (else `constant`).
    pub exponential: bool,
    /// `duration`: the constant interval, or the first exponential one (default 5 s constant,
    /// 500 ms exponential, as dapr/kit).
    pub duration: Duration,
    /// `maxInterval` of exponential backoff (default 60 s).
    pub max_interval: Duration,
    /// `maxRetries`; `None` retries without limit (`-1`, Dapr's default).
    pub max_retries: Option<u32>,
    /// `matching.httpStatusCodes` (Dapr 1.15): the app statuses that are retried, as inclusive
    /// ranges; empty: every status outside 200-399.
    pub http_status_codes: Vec<(u16, u16)>,
    /// `matching.gRPCStatusCodes` (Dapr 1.15): the gRPC codes retried; empty: every error.
    pub grpc_status_codes: Vec<(u16, u16)>,
}

/// A circuit breaker's `trip`: a CEL expression over the breaker's counts, as daprd evaluates
/// it (`dapr/dapr:pkg/resiliency/breaker/circuitbreaker.go`): the integer variables
/// `requests`, `totalSuccesses`, `totalFailures`, `consecutiveSuccesses` and
/// `consecutiveFailures`, e.g. `consecutiveFailures > 5` (the default) or
/// `requests > 10 && totalFailures * 2 > requests`.
#[derive(Clone)]
pub struct Trip {
    text: String,
    program: std::sync::Arc<cel::Program>,
}

impl Trip {
    /// The default trip, `consecutiveFailures > 5`.
    pub fn default_trip() -> Self {
        Self::parse("consecutiveFailures > 5").unwrap_or_else(|_| unreachable!("valid CEL"))
    }

    /// Compiles `text`.
    ///
    /// # Errors
    /// The CEL parse error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let program = cel::Program::compile(text.trim()).map_err(|e| e.to_string())?;
        Ok(Self {
            text: text.trim().to_owned(),
            program: std::sync::Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether counts `(requests, total successes, total failures, consecutive successes,
    /// consecutive failures)` trip the breaker. An expression that fails or is no boolean does
    /// not trip it (daprd: "we cannot assume it is safe to trip").
    pub fn trips(&self, counts: [u64; 5]) -> bool {
        let mut ctx = cel::Context::default();
        for (name, n) in [
            "requests",
            "totalSuccesses",
            "totalFailures",
            "consecutiveSuccesses",
            "consecutiveFailures",
        ]
        .into_iter()
        .zip(counts)
        {
            ctx.add_variable_from_value(name, i64::try_from(n).unwrap_or(i64::MAX));
        }
        matches!(self.program.execute(&ctx), Ok(cel::Value::Bool(true)))
    }
}

impl PartialEq for Trip {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Trip {}

impl std::fmt::Debug for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trip({:?})", self.text)
    }
}

/// One circuit breaker (`spec.policies.circuitBreakers.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// `maxRequests` let through while half-open (default 1).
    pub max_requests: u32,
    /// `interval`: how often the counts of a closed breaker are cleared (`None`: never).
    pub interval: Option<Duration>,
    /// `timeout`: how long it stays open before letting requests try again (default 60 s).
    pub timeout: Duration,
    /// `trip` (default `consecutiveFailures > 5`).
    pub trip: Trip,
}

/// The policies one target uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicies {
    /// Limit of each attempt.
    pub timeout: Option<Duration>,
    /// How failed attempts are retried.
    pub retry: Option<RetryPolicy>,
    /// The circuit breaker, with its policy name (breakers are kept per name and endpoint).
    pub circuit_breaker: Option<(String, BreakerPolicy)>,
}

/// The policies of one component target (`spec.targets.components.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentPolicies {
    /// `outbound`: calls the sidecar makes to the component.
    pub outbound: Option<TargetPolicies>,
    /// `inbound`: what the component delivers to the app (pub/sub messages).
    pub inbound: Option<TargetPolicies>,
}

/// The resiliency rules applying to this app, merged over every `Resiliency` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resiliency {
    /// `spec.targets.apps`, resolved to their policies, by app id.
    pub apps: BTreeMap<String, TargetPolicies>,
    /// `spec.targets.components`, resolved, by component name.
    pub components: BTreeMap<String, ComponentPolicies>,
    /// Every named policy, for Dapr's default policies (`DefaultRetryPolicy`, ...): see
    /// [`Resiliency::app_policies`] and [`Resiliency::component_policies`].
    pub named: NamedPolicies,
    /// The names of the resources read, for logs.
    pub names: Vec<String>,
}

/// The policies of `spec.policies`, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedPolicies {
    /// `timeouts`.
    pub timeouts: BTreeMap<String, Duration>,
    /// `retries`.
    pub retries: BTreeMap<String, RetryPolicy>,
    /// `circuitBreakers`.
    pub breakers: BTreeMap<String, BreakerPolicy>,
}

impl NamedPolicies {
    /// Dapr's default policies for the levels `levels` (most specific first; the policy kind
    /// is appended: `Default<level>RetryPolicy`, then `DefaultRetryPolicy`), each kind looked
    /// up on its own (`dapr/dapr:pkg/resiliency/resiliency.go` `expandPolicyTemplate`).
    pub fn defaults(&self, levels: &[String]) -> Option<TargetPolicies> {
        let name = |kind: &str, found: &dyn Fn(&str) -> bool| {
            levels
                .iter()
                .map(String::as_str)
                .chain([""])
                .map(|l| format!("Default{l}{kind}Policy"))
                .find(|n| found(n))
        };
        let p = TargetPolicies {
            timeout: name("Timeout", &|n| self.timeouts.contains_key(n))
                .and_then(|n| self.timeouts.get(&n).copied()),
            retry: name("Retry", &|n| self.retries.contains_key(n))
                .and_then(|n| self.retries.get(&n).cloned()),
            circuit_breaker: name("CircuitBreaker", &|n| self.breakers.contains_key(n))
                .and_then(|n| self.breakers.get(&n).cloned().map(|b| (n, b))),
        };
        (p != TargetPolicies::default()).then_some(p)
    }
}

impl Resiliency {
    /// Adds `other`'s policies and targets, replacing those of the same name (a Layotto
    /// config's `resiliency` section, then the resources path's `Resiliency` resources).
    pub fn merge(&mut self, other: Resiliency) {
        self.apps.extend(other.apps);
        self.components.extend(other.components);
        self.named.timeouts.extend(other.named.timeouts);
        self.named.retries.extend(other.named.retries);
        self.named.breakers.extend(other.named.breakers);
        self.names.extend(other.names);
    }

    /// The policies of calls to app `id`: its target, else Dapr's default policies
    /// (`DefaultAppRetryPolicy`, then `DefaultRetryPolicy`, and so for timeouts and circuit
    /// breakers).
    pub fn app_policies(&self, id: &str) -> Option<TargetPolicies> {
        match self.apps.get(id) {
            Some(p) => Some(p.clone()),
            None => self.named.defaults(&["App".to_owned()]),
        }
    }

    /// The policies of component `name` of Dapr type `kind` (`Statestore`, `Pubsub`, ...) in
    /// one direction: its target's (none when the target names only the other direction),
    /// else, for a component no target names, Dapr's defaults
    /// (`Default<kind>Component<Outbound|Inbound>RetryPolicy`, then
    /// `DefaultComponent<Outbound|Inbound>RetryPolicy`, `DefaultComponentRetryPolicy`,
    /// `DefaultRetryPolicy`; and so for timeouts and circuit breakers).
    pub fn component_policies(
        &self,
        name: &str,
        kind: &str,
        inbound: bool,
    ) -> Option<TargetPolicies> {
        if let Some(c) = self.components.get(name) {
            return if inbound {
                c.inbound.clone()
            } else {
                c.outbound.clone()
            };
        }
        let dir = if inbound { "Inbound" } else { "Outbound" };
        self.named.defaults(&[
            format!("{kind}Component{dir}"),
            format!("Component{dir}"),
            "Component".to_owned(),
        ])
    }
}

#[derive(Default)]
struct Raw {
    named: NamedPolicies,
    apps: BTreeMap<String, (Value, String)>,
    components: BTreeMap<String, (Value, String)>,
    names: Vec<String>,
}

struct Reader<'a> {
    file: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn duration(&mut self, v: &Value, path: &str, bare_ms: bool) -> Option<Duration> {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                self.problem(
                    path,
                    format!("expected a duration such as 5s, found {other}"),
                );
                return None;
            }
        };
        let bare: fn(u64) -> Duration = if bare_ms {
            Duration::from_millis
        } else {
            Duration::from_secs
        };
        let d = layotto_core::metadata::parse_duration(&text, bare);
        if d.is_none() {
            self.problem(
                path,
                format!("'{text}' is not a duration (e.g. 5s, 1m30s, 500ms)"),
            );
        }
        d
    }

    fn codes(&mut self, v: Option<&Value>, path: &str, max: u16) -> Vec<(u16, u16)> {
        let Some(v) = v else { return Vec::new() };
        let Some(text) = v.as_str() else {
            self.problem(path, "expected a list such as \"500-599,429\"");
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                (Ok(a), Ok(b)) if a <= b && b <= max && (max < 100 || a >= 100) => {
                    out.push((a, b));
                }
                _ => self.problem(path, format!("'{part}' is not a code or range of codes")),
            }
        }
        out
    }

    fn retry(&mut self, v: &Value, path: &str) -> Option<RetryPolicy> {
        let exponential = match v
            .get("policy")
            .and_then(Value::as_str)
            .unwrap_or("constant")
        {
            "constant" => false,
            "exponential" => true,
            other => {
                self.problem(
                    &format!("{path}.policy"),
                    format!("'{other}' is neither constant nor exponential"),
                );
                return None;
            }
        };
        let default = if exponential {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let duration = match v.get("duration") {
            Some(d) => self.duration(d, &format!("{path}.duration"), false)?,
            None => default,
        };
        let max_interval = match v.get("maxInterval") {
            Some(d) => self.duration(d, &format!("{path}.maxInterval"), false)?,
            None => Duration::from_secs(60),
        };
        let max_retries = match v.get("maxRetries") {
            None | Some(Value::Null) => None,
            Some(n) => match n
                .as_i64()
                .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) if n < 0 => None,
                Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                None => {
                    self.problem(&format!("{path}.maxRetries"), "expected a whole number");
                    return None;
                }
            },
        };
        let matching = v.get("matching");
        Some(RetryPolicy {
            exponential,
            duration,
            max_interval,
            max_retries,
            http_status_codes: self.codes(
                matching.and_then(|m| m.get("httpStatusCodes")),
                &format!("{path}.matching.httpStatusCodes"),
                599,
            ),
            grpc_status_codes: self.codes(
                matching.and_then(|m| m.get("gRPCStatusCodes")),
                &format!("{path}.matching.gRPCStatusCodes"),
                16,
            ),
        })
    }

    fn trip(&mut self, v: Option<&Value>, path: &str) -> Option<Trip> {
        let Some(v) = v else {
            return Some(Trip::default_trip());
        };
        let Some(text) = v.as_str() else {
            self.problem(path, format!("expected a CEL expression, got {v}"));
            return None;
        };
        match Trip::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(
                    path,
                    format!(
                        "trip '{text}' is no CEL expression over requests, totalSuccesses, \
                         totalFailures, consecutiveSuccesses and consecutiveFailures: {e}"
                    ),
                );
                None
            }
        }
    }

    fn breaker(&mut self, v: &Value, path: &str) -> Option<BreakerPolicy> {
        let max_requests = match v.get("maxRequests") {
            None | Some(Value::Null) => 1,
            Some(n) => match n
                .as_u64()
                .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            {
                Some(0) => 1,
                Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
                None => {
                    self.problem(&format!("{path}.maxRequests"), "expected a whole number");
                    return None;
                }
            },
        };
        let interval = match v.get("interval") {
            Some(d) => {
                Some(self.duration(d, &format!("{path}.interval"), false)?).filter(|d| !d.is_zero())
            }
            None => None,
        };
        let timeout = match v.get("timeout") {
            Some(d) => Some(self.duration(d, &format!("{path}.timeout"), false)?)
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(60)),
            None => Duration::from_secs(60),
        };
        let trip = self.trip(v.get("trip"), &format!("{path}.trip"))?;
        Some(BreakerPolicy {
            max_requests,
            interval,
            timeout,
            trip,
        })
    }

    fn document(&mut self, doc: &Value, base: &str, app_id: &str, raw: &mut Raw) {
        if doc.get("kind").and_then(Value::as_str) != Some("Resiliency") {
            return;
        }
        if let Some(scopes) = doc.get("scopes").and_then(Value::as_array)
            && !scopes.is_empty()
            && !scopes.iter().any(|s| s.as_str() == Some(app_id))
        {
            return;
        }
        if doc.get("apiVersion").and_then(Value::as_str) != Some("dapr.io/v1alpha1") {
            self.problem(
                &format!("{base}.apiVersion"),
                "apiVersion must be 'dapr.io/v1alpha1' for a Resiliency",
            );
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        raw.names.push(name);
        if let Some(spec) = doc.get("spec") {
            self.spec(spec, &format!("{base}.spec"), raw);
        }
    }

    /// The `spec` of a Resiliency resource (or Layotto's `resiliency` section) at `base`.
    fn spec(&mut self, spec: &Value, base: &str, raw: &mut Raw) {
        let policies = spec.get("policies");
        let each = |key: &str| {
            policies
                .and_then(|p| p.get(key))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        for (k, v) in each("timeouts") {
            let path = format!("{base}.policies.timeouts.{k}");
            if let Some(d) = self.duration(&v, &path, true) {
                raw.named.timeouts.insert(k, d);
            }
        }
        for (k, v) in each("retries") {
            let path = format!("{base}.policies.retries.{k}");
            if let Some(r) = self.retry(&v, &path) {
                raw.named.retries.insert(k, r);
            }
        }
        for (k, v) in each("circuitBreakers") {
            let path = format!("{base}.policies.circuitBreakers.{k}");
            if let Some(b) = self.breaker(&v, &path) {
                raw.named.breakers.insert(k, b);
            }
        }
        if let Some(targets) = spec.get("targets").and_then(Value::as_object) {
            for (kind, value) in targets {
                let path = format!("{base}.targets.{kind}");
                match kind.as_str() {
                    "apps" => {
                        for (id, t) in value.as_object().cloned().unwrap_or_default() {
                            raw.apps.insert(id.clone(), (t, format!("{path}.{id}")));
                        }
                    }
                    "components" => {
                        for (name, t) in value.as_object().cloned().unwrap_or_default() {
                            raw.components
                                .insert(name.clone(), (t, format!("{path}.{name}")));
                        }
                    }
                    "actors" => self.problem(
                        &path,
                        "resiliency targets of actors are not supported (there are no actors \
                         here): the policies would not apply",
                    ),
                    other => self.problem(&path, format!("unknown target kind '{other}'")),
                }
            }
        }
    }

    fn resolve(&mut self, raw: Raw) -> Resiliency {
        let mut out = Resiliency {
            names: raw.names,
            ..Resiliency::default()
        };
        for (id, (t, path)) in &raw.apps {
            let p = self.target(&raw.named, t, path);
            out.apps.insert(id.clone(), p);
        }
        for (name, (t, path)) in &raw.components {
            let mut c = ComponentPolicies::default();
            for (dir, v) in t.as_object().cloned().unwrap_or_default() {
                let at = format!("{path}.{dir}");
                match dir.as_str() {
                    "outbound" => c.outbound = Some(self.target(&raw.named, &v, &at)),
                    "inbound" => c.inbound = Some(self.target(&raw.named, &v, &at)),
                    other => self.problem(
                        &at,
                        format!("unknown direction '{other}' (expected outbound or inbound)"),
                    ),
                }
            }
            out.components.insert(name.clone(), c);
        }
        out.named = raw.named;
        out
    }

    /// The policies target `t` (at `path`) names.
    fn target(&mut self, named: &NamedPolicies, t: &Value, path: &str) -> TargetPolicies {
        let mut p = TargetPolicies::default();
        let pick = |key: &str| t.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(n) = pick("timeout") {
            match named.timeouts.get(&n) {
                Some(d) => p.timeout = Some(*d),
                None => self.problem(
                    &format!("{path}.timeout"),
                    format!("no timeout policy '{n}'"),
                ),
            }
        }
        if let Some(n) = pick("retry") {
            match named.retries.get(&n) {
                Some(r) => p.retry = Some(r.clone()),
                None => self.problem(&format!("{path}.retry"), format!("no retry policy '{n}'")),
            }
        }
        if let Some(n) = pick("circuitBreaker") {
            match named.breakers.get(&n) {
                Some(b) => p.circuit_breaker = Some((n, b.clone())),
                None => self.problem(
                    &format!("{path}.circuitBreaker"),
                    format!("no circuit breaker policy '{n}'"),
                ),
            }
        }
        p
    }
}

/// Every `.yaml`/`.yml` file directly under `dirs`, each directory's in name order, as
/// `(path, text)`; unreadable directories and files are left to the component loader to report.
pub(crate) fn resource_files(dirs: &[impl AsRef<Path>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(read) = std::fs::read_dir(dir.as_ref()) else {
            continue;
        };
        let mut files: Vec<_> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                })
            })
            .collect();
        files.sort();
        for f in files {
            if let Ok(text) = std::fs::read_to_string(&f) {
                out.push((f.display().to_string(), text));
            }
        }
    }
    out
}

/// Runs `parse` (one file's text and name into found items and problems) over `sources`: the
/// items when no problem was found, else every problem. The loaders of `HTTPEndpoint` and
/// `Subscription` resources share it.
pub(crate) fn gather<T>(
    sources: impl IntoIterator<Item = (String, String)>,
    mut parse: impl FnMut(&str, &str, &mut Vec<T>, &mut Vec<Problem>),
) -> Result<Vec<T>, Vec<Problem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (file, text) in sources {
        parse(&text, &file, &mut out, &mut problems);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads every `Resiliency` resource under `dirs` that applies to `app_id` (no `scopes`, or
/// `scopes` naming it), merged.
///
/// # Errors
/// Every problem at once: a policy that does not parse, a target naming a missing policy, a
/// target kind not supported yet.
pub fn load_resiliency(
    dirs: &[impl AsRef<Path>],
    app_id: &str,
) -> Result<Resiliency, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut raw = Raw::default();
    for (file, text) in resource_files(dirs) {
        parse_into(&text, &file, app_id, &mut raw, &mut problems);
    }
    finish(raw, problems, "resiliency")
}

/// Layotto's `resiliency` section of `grpc_config` (at JSON path `path` of `file`): the `spec`
/// of a Dapr `Resiliency` resource, `{"policies": {...}, "targets": {...}}`, as JSON.
///
/// # Errors
/// As [`load_resiliency`].
pub fn parse_resiliency_section(
    section: &Value,
    file: &str,
    path: &str,
) -> Result<Resiliency, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut raw = Raw {
        names: vec!["layotto".to_owned()],
        ..Raw::default()
    };
    let mut r = Reader {
        file,
        problems: &mut problems,
    };
    if section.is_object() {
        r.spec(section, path, &mut raw);
    } else {
        r.problem(path, "expected an object with policies and targets");
    }
    finish(raw, problems, file)
}

/// [`load_resiliency`] over one YAML text.
///
/// # Errors
/// As [`load_resiliency`].
pub fn parse_resiliency(text: &str, file: &str, app_id: &str) -> Result<Resiliency, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut raw = Raw::default();
    parse_into(text, file, app_id, &mut raw, &mut problems);
    finish(raw, problems, file)
}

/// Resolves the targets of `raw` to their policies; every problem found so far or now.
fn finish(raw: Raw, mut problems: Vec<Problem>, file: &str) -> Result<Resiliency, Vec<Problem>> {
    let mut r = Reader {
        file,
        problems: &mut problems,
    };
    let out = r.resolve(raw);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn parse_into(text: &str, file: &str, app_id: &str, raw: &mut Raw, problems: &mut Vec<Problem>) {
    use serde::Deserialize as _;
    let mut r = Reader { file, problems };
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        // Syntax errors are the component loader's to report.
        let Ok(v) = Value::deserialize(doc) else {
            return;
        };
        r.document(&v, &format!("doc[{i}]"), app_id, raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: res
scopes: [caller]
spec:
  policies:
    timeouts:
      quick: 300ms
      bare: 250
    retries:
      thrice:
        policy: constant
        duration: 50ms
        maxRetries: 3
      forever:
        policy: exponential
        maxInterval: 2s
        matching:
          httpStatusCodes: \"500-599,429\"
    circuitBreakers:
      cb:
        maxRequests: 1
        timeout: 2s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      callee:
        timeout: quick
        retry: thrice
        circuitBreaker: cb
      other:
        retry: forever
        timeout: bare
";

    #[test]
    fn policies_resolve_per_app() {
        let r = parse_resiliency(DOC, "r.yaml", "caller").unwrap();
        let c = &r.apps["callee"];
        assert_eq!(c.timeout, Some(Duration::from_millis(300)));
        let retry = c.retry.as_ref().unwrap();
        assert_eq!(
            (retry.exponential, retry.duration, retry.max_retries),
            (false, Duration::from_millis(50), Some(3))
        );
        let (name, b) = c.circuit_breaker.as_ref().unwrap();
        assert_eq!(name, "cb");
        assert_eq!(b.timeout, Duration::from_secs(2));
        assert!(b.trip.trips([0, 0, 0, 0, 3]) && !b.trip.trips([0, 0, 0, 0, 2]));
        // Any CEL over the counts, as daprd evaluates it; a failing expression never trips.
        let ratio = Trip::parse("requests >= 4 && totalFailures * 2 > requests").expect("CEL");
        assert!(ratio.trips([4, 1, 3, 0, 1]) && !ratio.trips([4, 2, 2, 0, 2]));
        assert!(!ratio.trips([3, 0, 3, 0, 3]));
        assert!(
            !Trip::parse("unknownCounter > 1")
                .expect("parses")
                .trips([9; 5])
        );
        assert!(!Trip::parse("requests").expect("parses").trips([9; 5]));
        let o = &r.apps["other"];
        assert_eq!(o.timeout, Some(Duration::from_millis(250)));
        let f = o.retry.as_ref().unwrap();
        assert_eq!(
            (f.exponential, f.duration, f.max_retries),
            (true, Duration::from_millis(500), None)
        );
        assert_eq!(f.http_status_codes, [(500, 599), (429, 429)]);
        // Out of scope: nothing applies.
        assert!(
            parse_resiliency(DOC, "r.yaml", "someone")
                .unwrap()
                .apps
                .is_empty()
        );
    }

    #[test]
    fn bad_policies_and_unsupported_targets_are_problems() {
        let bad = DOC
            .replace(
                "consecutiveFailures >= 3",
                "consecutiveFailures > 3 &&",
            )
            .replace("retry: thrice", "retry: twice")
            .replace(
                "    apps:\n",
                "    components:\n      store: {sideways: {}}\n    actors:\n      a: {}\n    apps:\n",
            );
        let p = parse_resiliency(&bad, "r.yaml", "caller").unwrap_err();
        let all: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
        assert!(
            all.iter()
                .any(|m| m.contains("trip 'consecutiveFailures > 3 &&' is no CEL expression")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|m| m.contains("no retry policy 'twice'")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|m| m.contains("unknown direction 'sideways'")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|m| m.contains("targets of actors are not supported")),
            "{all:?}"
        );
    }

    #[test]
    fn component_targets_and_default_policies() {
        let doc = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    timeouts:
      short: 1s
      DefaultTimeoutPolicy: 9s
      DefaultComponentOutboundTimeoutPolicy: 3s
      DefaultStatestoreComponentOutboundTimeoutPolicy: 2s
      DefaultAppTimeoutPolicy: 4s
    retries:
      DefaultComponentInboundRetryPolicy: {policy: constant, duration: 1s, maxRetries: 2}
  targets:
    components:
      store:
        outbound: {timeout: short}
      only-in:
        inbound: {timeout: short}
    apps:
      b: {timeout: short}
";
        let r = parse_resiliency(doc, "r.yaml", "me").unwrap();
        let secs = |p: Option<TargetPolicies>| p.and_then(|p| p.timeout).map(|d| d.as_secs());
        // Named targets win; a listed component gets nothing for the direction it omits.
        assert_eq!(
            secs(r.component_policies("store", "Statestore", false)),
            Some(1)
        );
        assert_eq!(r.component_policies("store", "Statestore", true), None);
        assert_eq!(r.component_policies("only-in", "Statestore", false), None);
        // Defaults, most specific first.
        assert_eq!(
            secs(r.component_policies("other", "Statestore", false)),
            Some(2)
        );
        assert_eq!(
            secs(r.component_policies("other", "Pubsub", false)),
            Some(3)
        );
        assert_eq!(secs(r.component_policies("other", "Pubsub", true)), Some(9));
        let inbound = r.component_policies("other", "Pubsub", true).unwrap();
        assert_eq!(inbound.retry.map(|p| p.max_retries), Some(Some(2)));
        assert_eq!(secs(r.app_policies("b")), Some(1));
        assert_eq!(secs(r.app_policies("c")), Some(4));
    }

    #[test]
    fn layottos_section_reads_the_same_spec() {
        let section = serde_json::json!({
            "policies": {
                "timeouts": {"quick": "200ms"},
                "retries": {"thrice": {"policy": "constant", "duration": "10ms", "maxRetries": 3}}
            },
            "targets": {
                "apps": {"b": {"timeout": "quick"}},
                "components": {"redis_state": {"outbound": {"retry": "thrice"}}}
            }
        });
        let r = parse_resiliency_section(&section, "c.json", "$.x.resiliency").unwrap();
        assert_eq!(
            r.app_policies("b").and_then(|p| p.timeout),
            Some(Duration::from_millis(200))
        );
        let store = r
            .component_policies("redis_state", "Statestore", false)
            .unwrap();
        assert_eq!(store.retry.and_then(|p| p.max_retries), Some(3));
        let bad = serde_json::json!({"targets": {"apps": {"b": {"timeout": "missing"}}}});
        let p = parse_resiliency_section(&bad, "c.json", "$.x.resiliency").unwrap_err();
        assert_eq!(p[0].path, "$.x.resiliency.targets.apps.b.timeout");
        assert_eq!(p[0].message, "no timeout policy 'missing'");
    }
}
