//! Resiliency policies (Dapr's `Resiliency` resources): on service invocation (targets `apps`),
//! on component calls (targets `components.<name>.outbound`, applied in the one call path,
//! `call.rs`) and on pub/sub deliveries to the app (`components.<name>.inbound`). Each attempt
//! runs under the target's timeout, through its circuit breaker, retried by its retry policy,
//! as daprd's policy runner nests them (retry around breaker around timeout;
//! `dapr/dapr:pkg/resiliency/policy.go`).
//!
//! A failure is an error reaching the app (its sidecar unreachable, a timeout) or an app answer
//! with a status outside 200-399 (daprd's `codeError`); a retry policy with
//! `matching.httpStatusCodes` (Dapr 1.15) retries only those statuses. When retries run out the
//! caller gets the last answer as the app gave it, or the last error. An open breaker fails
//! calls at once (`circuit breaker is open`) without retrying them. Breakers are kept per policy
//! name and endpoint (`<app-id>:<method>`), as daprd's `EndpointPolicy`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use layotto_config::resiliency::{BreakerPolicy, Resiliency, RetryPolicy, TargetPolicies};
use layotto_core::{Error, ErrorKind, Result};

use crate::InvokeResponse;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// One breaker (sony/gobreaker's state machine, as daprd uses it).
struct Breaker {
    policy: BreakerPolicy,
    state: State,
    /// requests, total successes, total failures, consecutive successes, consecutive failures.
    counts: [u64; 5],
    /// When the counts were last cleared (closed) or the breaker opened.
    since: Instant,
    /// Requests let through while half-open.
    probes: u32,
}

impl Breaker {
    fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: State::Closed,
            counts: [0; 5],
            since: Instant::now(),
            probes: 0,
        }
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.counts = [0; 5];
        self.since = Instant::now();
        self.probes = 0;
    }

    /// Whether a request may go; moves an open breaker whose timeout passed to half-open.
    /// Returns the state it goes through and whether the state changed.
    fn admit(&mut self) -> (Option<State>, bool) {
        let now = Instant::now();
        let mut changed = false;
        match self.state {
            State::Closed => {
                if self
                    .policy
                    .interval
                    .is_some_and(|i| now.duration_since(self.since) >= i)
                {
                    self.counts = [0; 5];
                    self.since = now;
                }
            }
            State::Open if now.duration_since(self.since) >= self.policy.timeout => {
                self.enter(State::HalfOpen);
                changed = true;
            }
            State::Open => return (None, false),
            State::HalfOpen => {}
        }
        if self.state == State::HalfOpen {
            if self.probes >= self.policy.max_requests {
                return (None, changed);
            }
            self.probes += 1;
        }
        self.counts[0] += 1;
        (Some(self.state), changed)
    }

    /// Records an outcome; returns the new state when it changed.
    fn record(&mut self, success: bool) -> Option<State> {
        let c = &mut self.counts;
        if success {
            c[1] += 1;
            c[3] += 1;
            c[4] = 0;
        } else {
            c[2] += 1;
            c[4] += 1;
            c[3] = 0;
        }
        match (self.state, success) {
            (State::HalfOpen, false) => {
                self.enter(State::Open);
                Some(State::Open)
            }
            (State::HalfOpen, true) if self.counts[3] >= u64::from(self.policy.max_requests) => {
                self.enter(State::Closed);
                Some(State::Closed)
            }
            (State::Closed, false) if self.policy.trip.trips(self.counts) => {
                self.enter(State::Open);
                Some(State::Open)
            }
            _ => None,
        }
    }
}

/// Most breakers kept; beyond it, closed breakers without failures are dropped (endpoints are
/// caller-chosen paths, so their number has no bound of its own).
const MAX_BREAKERS: usize = 10_000;

/// Settles an admitted request when the attempt is dropped before its outcome (the caller went
/// away): counted as a failure, so a half-open breaker never waits for a probe that is gone.
struct Pending<'a> {
    policies: &'a Policies,
    key: Option<String>,
}

impl Pending<'_> {
    fn settle(&mut self, success: bool) -> Option<State> {
        let key = self.key.take()?;
        self.policies
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            .and_then(|b| b.record(success))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.settle(false);
    }
}

/// The resiliency policies of this sidecar and the state of their breakers.
#[derive(Default)]
pub(crate) struct Policies {
    rules: Resiliency,
    /// Dapr's default app policies (`DefaultAppRetryPolicy`, ...), for apps no target names.
    default_app: Option<TargetPolicies>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

/// The wait before retry number `attempt` (0 = the first retry).
fn backoff(p: &RetryPolicy, attempt: u32) -> Duration {
    if !p.exponential {
        return p.duration;
    }
    // dapr/kit: interval * 1.5^n, randomised by +-50 %, capped at maxInterval.
    let base = p.duration.as_secs_f64() * 1.5f64.powi(i32::try_from(attempt).unwrap_or(i32::MAX));
    let jitter = 0.5 + f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
    Duration::from_secs_f64((base * jitter).min(p.max_interval.as_secs_f64()))
}

/// Whether an invocation's `outcome` is a failure, and whether `retry` retries it.
pub(crate) fn judge_invocation(
    outcome: &Result<InvokeResponse>,
    retry: Option<&RetryPolicy>,
) -> (bool, bool) {
    match outcome {
        Ok(r) if (200..=399).contains(&r.status) => (false, false),
        Ok(r) => {
            let retried = retry.is_some_and(|p| {
                p.http_status_codes.is_empty()
                    || p.http_status_codes
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(&r.status))
            });
            (true, retried)
        }
        // A malformed request or one the callee cannot take is not retried.
        Err(e) if matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::Unsupported) => {
            (true, false)
        }
        Err(_) => (true, retry.is_some()),
    }
}

/// Whether a component call's `outcome` is a failure, and whether `retry` retries it. An
/// answer about the request itself (invalid, not found, ETag mismatch, denied, unsupported)
/// is neither: sending it again cannot change it, and it says nothing about the component's
/// health.
pub(crate) fn judge_component<R>(outcome: &Result<R>, retry: Option<&RetryPolicy>) -> (bool, bool) {
    match outcome {
        Ok(_) => (false, false),
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::InvalidArgument
                    | ErrorKind::NotFound
                    | ErrorKind::EtagMismatch
                    | ErrorKind::PermissionDenied
                    | ErrorKind::Unsupported
                    | ErrorKind::NotConfigured
                    | ErrorKind::StoreNotFound
            ) =>
        {
            (false, false)
        }
        Err(_) => (true, retry.is_some()),
    }
}

/// Where a guarded call goes, for breakers and metrics.
pub(crate) struct Guarded<'a> {
    /// The metrics `target` label: `app_<id>`, `<Type>_<component>`.
    pub target: &'a str,
    /// What breakers are kept per: `<app-id>:<method>` for apps, the component's name.
    pub endpoint: &'a str,
    /// Calls into the app (pub/sub deliveries) rather than out of the sidecar.
    pub inbound: bool,
}

impl Policies {
    pub(crate) fn new(rules: Resiliency) -> Self {
        Self {
            default_app: rules.named.defaults(&["App".to_owned()]),
            rules,
            breakers: Mutex::default(),
        }
    }

    /// The policies of calls to app `id`: the Resiliency target naming it, else Dapr's default
    /// app policies.
    pub(crate) fn app(&self, id: &str) -> Option<&TargetPolicies> {
        self.rules.apps.get(id).or(self.default_app.as_ref())
    }

    /// The policies of component `name` of Dapr type `kind` in one direction.
    pub(crate) fn component(
        &self,
        name: &str,
        kind: &str,
        inbound: bool,
    ) -> Option<TargetPolicies> {
        self.rules.component_policies(name, kind, inbound)
    }

    fn name(&self) -> &str {
        self.rules.names.last().map_or("", String::as_str)
    }

    /// Runs `call` (one attempt) for `to` under `p`, `judge` telling failures and retried
    /// outcomes apart.
    ///
    /// # Errors
    /// The last attempt's error; `Unavailable` "circuit breaker is open" when the breaker
    /// refused the call; `DeadlineExceeded` when the timeout cut an attempt.
    pub(crate) async fn run<R, F, Fut>(
        &self,
        p: &TargetPolicies,
        to: &Guarded<'_>,
        metrics: &Metrics,
        mut call: F,
        judge: impl Fn(&Result<R>, Option<&RetryPolicy>) -> (bool, bool),
    ) -> Result<R>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R>>,
    {
        let (target, endpoint, inbound) = (to.target, to.endpoint, to.inbound);
        let record = |policy: &str, status: &str, activated: bool| {
            metrics.resiliency(self.name(), policy, target, inbound, status, activated);
        };
        let mut attempt = 0u32;
        loop {
            if let Some((cb, policy)) = &p.circuit_breaker {
                let key = format!("{cb}/{endpoint}");
                let (admitted, changed) = {
                    let mut all = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
                    if all.len() >= MAX_BREAKERS && !all.contains_key(&key) {
                        all.retain(|_, b| b.state != State::Closed || b.counts[2] > 0);
                    }
                    all.entry(key)
                        .or_insert_with(|| Breaker::new(policy.clone()))
                        .admit()
                };
                let Some(state) = admitted else {
                    record("circuitbreaker", "open", false);
                    return Err(Error::unavailable(format!(
                        "circuit breaker is open: calls to {endpoint} fail at once until its \
                         timeout ({:?}) passes",
                        policy.timeout
                    )));
                };
                record("circuitbreaker", state.label(), changed);
            }
            let mut pending = Pending {
                policies: self,
                key: p
                    .circuit_breaker
                    .as_ref()
                    .map(|(cb, _)| format!("{cb}/{endpoint}")),
            };
            let outcome = match p.timeout {
                Some(t) => {
                    record("timeout", "", false);
                    match tokio::time::timeout(t, call()).await {
                        Ok(r) => r,
                        Err(_) => {
                            record("timeout", "", true);
                            Err(Error::new(
                                ErrorKind::DeadlineExceeded,
                                format!("timeout waiting for {endpoint} after {t:?}"),
                            ))
                        }
                    }
                }
                None => call().await,
            };
            let (failed, retried) = judge(&outcome, p.retry.as_ref());
            if let Some(s) = pending.settle(!failed) {
                tracing::warn!(endpoint, state = s.label(), "circuit breaker changed state");
                record("circuitbreaker", s.label(), true);
            }
            let Some(retry) = p.retry.as_ref().filter(|_| failed && retried) else {
                return outcome;
            };
            if retry.max_retries.is_some_and(|m| attempt >= m) {
                return outcome;
            }
            record("retry", "", true);
            tokio::time::sleep(backoff(retry, attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layotto_config::resiliency::Trip;

    fn breaker() -> Breaker {
        Breaker::new(BreakerPolicy {
            max_requests: 1,
            interval: None,
            timeout: Duration::from_millis(30),
            trip: Trip::parse("consecutiveFailures >= 2").expect("CEL"),
        })
    }

    #[test]
    fn a_breaker_opens_half_opens_and_closes() {
        let mut b = breaker();
        assert_eq!(b.admit().0, Some(State::Closed));
        assert_eq!(b.record(false), None);
        b.admit();
        assert_eq!(b.record(false), Some(State::Open));
        assert_eq!(b.admit().0, None, "open: refused");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), (Some(State::HalfOpen), true));
        assert_eq!(b.admit().0, None, "one probe at a time");
        assert_eq!(
            b.record(false),
            Some(State::Open),
            "a failed probe opens again"
        );
        std::thread::sleep(Duration::from_millis(40));
        b.admit();
        assert_eq!(b.record(true), Some(State::Closed));
        assert_eq!(b.admit().0, Some(State::Closed));
    }

    #[test]
    fn statuses_are_judged_as_daprd_does() {
        let ok = |s| {
            Ok(InvokeResponse {
                status: s,
                ..InvokeResponse::default()
            })
        };
        let any = RetryPolicy {
            exponential: false,
            duration: Duration::ZERO,
            max_interval: Duration::ZERO,
            max_retries: Some(1),
            http_status_codes: Vec::new(),
            grpc_status_codes: Vec::new(),
        };
        assert_eq!(judge_invocation(&ok(204), Some(&any)), (false, false));
        assert_eq!(judge_invocation(&ok(302), Some(&any)), (false, false));
        assert_eq!(judge_invocation(&ok(404), Some(&any)), (true, true));
        assert_eq!(judge_invocation(&ok(503), None), (true, false));
        let only_5xx = RetryPolicy {
            http_status_codes: vec![(500, 599)],
            ..any.clone()
        };
        assert_eq!(judge_invocation(&ok(404), Some(&only_5xx)), (true, false));
        assert_eq!(judge_invocation(&ok(502), Some(&only_5xx)), (true, true));
        assert_eq!(
            judge_invocation(&Err(Error::unavailable("down")), Some(&only_5xx)),
            (true, true)
        );
    }

    #[test]
    fn exponential_backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            exponential: true,
            duration: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_retries: None,
            http_status_codes: Vec::new(),
            grpc_status_codes: Vec::new(),
        };
        assert!(backoff(&p, 0) <= Duration::from_millis(150));
        assert!(backoff(&p, 0) >= Duration::from_millis(50));
        assert_eq!(backoff(&p, 20), Duration::from_millis(400));
    }
}
