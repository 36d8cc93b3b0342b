//! One run of a suite against one component: the features it claims, the cases that ran, the
//! cases skipped because a feature is not claimed, and the failure text.
//!
//! Every suite's `run_all` starts a [`SuiteRun`] with the component's
//! [`features`](layotto_core::Component::features) and the features the suite has cases for.
//! A claim the suite cannot prove fails at once ("claims QUERY_API but the suite has no cases
//! for it"); a claimed feature's cases run; an unclaimed feature's cases are skipped and named
//! on standard output (`SKIP state::ttl_expiry (not claimed: TTL)`, visible with
//! `--nocapture` and in the captured output of a failed test). When a case panics, the run
//! panics again with the case's message followed by the run's summary (claims, passed and
//! skipped cases), so the failure text says what was and was not tried.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use layotto_core::Feature;

/// The state of one suite run; see the [module docs](self).
#[derive(Debug)]
pub struct SuiteRun {
    suite: &'static str,
    claimed: Vec<Feature>,
    covered: &'static [Feature],
    passed: Vec<&'static str>,
    skipped: Vec<String>,
}

fn names(features: &[Feature]) -> String {
    if features.is_empty() {
        return "none".to_owned();
    }
    features
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

impl SuiteRun {
    /// Starts suite `suite` for a component claiming `claimed`; `covered` lists the features the
    /// suite has cases for. Prints the claims.
    ///
    /// # Panics
    /// When the component claims a feature not in `covered`, naming each such feature.
    pub fn start(suite: &'static str, claimed: &[Feature], covered: &'static [Feature]) -> Self {
        let mut claimed = claimed.to_vec();
        claimed.sort_unstable();
        claimed.dedup();
        let unproven: Vec<Feature> = claimed
            .iter()
            .copied()
            .filter(|f| !covered.contains(f))
            .collect();
        assert!(
            unproven.is_empty(),
            "{suite} suite: the component claims {} but the suite has no cases for it; a claimed \
             feature must be proven by its cases (this suite has cases for: {})",
            names(&unproven),
            names(covered)
        );
        println!("{suite} suite: the component claims [{}]", names(&claimed));
        Self {
            suite,
            claimed,
            covered,
            passed: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Whether the component claims `feature`.
    pub fn claims(&self, feature: Feature) -> bool {
        self.claimed.contains(&feature)
    }

    /// Runs base case `name` (every component must pass it).
    ///
    /// # Panics
    /// When the case panics: its message followed by the run's summary.
    pub async fn case(&mut self, name: &'static str, case: impl Future<Output = ()>) {
        self.guard(name, case).await;
    }

    /// Runs case `name` when the component claims every feature in `needs`; otherwise skips it
    /// and prints which feature is not claimed. `case` is not polled when skipped, so building
    /// its component lazily inside it costs nothing.
    ///
    /// # Panics
    /// When the case runs and panics: its message followed by the run's summary; when `needs`
    /// holds a feature missing from the suite's `covered` list (a bug of the suite).
    pub async fn feature_case(
        &mut self,
        needs: &[Feature],
        name: &'static str,
        case: impl Future<Output = ()>,
    ) {
        assert!(
            needs.iter().all(|f| self.covered.contains(f)),
            "{} suite: case {name} needs [{}] but the suite's covered features are [{}]",
            self.suite,
            names(needs),
            names(self.covered)
        );
        let missing: Vec<Feature> = needs.iter().copied().filter(|f| !self.claims(*f)).collect();
        if missing.is_empty() {
            self.guard(name, case).await;
        } else {
            self.skip(name, format!("not claimed: {}", names(&missing)));
        }
    }

    /// Runs case `name` only when the component does *not* claim `feature` (it checks how a
    /// component without the feature behaves, e.g. `transact` returning `Unsupported`).
    ///
    /// # Panics
    /// When the case runs and panics: its message followed by the run's summary.
    pub async fn unclaimed_case(
        &mut self,
        feature: Feature,
        name: &'static str,
        case: impl Future<Output = ()>,
    ) {
        if self.claims(feature) {
            self.skip(name, format!("only for components without {feature}"));
        } else {
            self.guard(name, case).await;
        }
    }

    /// Skips case `name` for another reason than a feature (e.g. the fixture lacks what it
    /// needs), printing it with `why`.
    pub fn skip(&mut self, name: &'static str, why: impl std::fmt::Display) {
        let line = format!("{name} ({why})");
        println!("{} suite: SKIP {line}", self.suite);
        self.skipped.push(line);
    }

    async fn guard(&mut self, name: &'static str, case: impl Future<Output = ()>) {
        match AssertUnwindSafe(case).catch_unwind().await {
            Ok(()) => self.passed.push(name),
            Err(payload) => {
                let msg = panic_message(&*payload);
                panic!("{msg}\n{}", self.summary(Some(name)));
            }
        }
    }

    /// The run's summary: claims, passed cases, the failed one (if any) and skipped cases.
    pub fn summary(&self, failed: Option<&str>) -> String {
        let mut s = format!(
            "{} suite: claimed [{}]; passed {} case(s)",
            self.suite,
            names(&self.claimed),
            self.passed.len()
        );
        if let Some(f) = failed {
            s.push_str(&format!("; FAILED {f}"));
        }
        if self.skipped.is_empty() {
            s.push_str("; skipped none");
        } else {
            s.push_str(&format!(
                "; skipped {}: {}",
                self.skipped.len(),
                self.skipped.join(", ")
            ));
        }
        s
    }

    /// The cases skipped so far, each with the reason, e.g.
    /// `state::ttl_expiry (not claimed: TTL)`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Ends the run, printing its summary.
    pub fn finish(self) {
        println!("{}", self.summary(None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skips_are_named_and_claims_checked() {
        let mut run = SuiteRun::start("t", &[Feature::Etag], &[Feature::Etag, Feature::Ttl]);
        let mut ran = Vec::new();
        run.feature_case(&[Feature::Etag], "t::etag", async { ran.push("etag") })
            .await;
        run.feature_case(&[Feature::Ttl], "t::ttl", async {
            panic!("skipped cases are not polled")
        })
        .await;
        run.unclaimed_case(Feature::Etag, "t::no_etag", async {
            panic!("only without ETAG")
        })
        .await;
        assert_eq!(ran, ["etag"]);
        assert_eq!(run.skipped().len(), 2);
        assert!(
            run.skipped()[0].contains("t::ttl (not claimed: TTL)"),
            "{:?}",
            run.skipped()
        );
        let s = run.summary(None);
        assert!(s.contains("claimed [ETAG]") && s.contains("t::ttl"), "{s}");
    }

    #[test]
    fn unproven_claim_fails_naming_the_feature() {
        let r = std::panic::catch_unwind(|| SuiteRun::start("state", &[Feature::QueryApi], &[]));
        let msg = panic_message(&*r.expect_err("QUERY_API has no cases"));
        assert!(
            msg.contains("claims QUERY_API but the suite has no cases for it"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_failing_case_reports_the_skips() {
        let mut run = SuiteRun::start("t", &[], &[Feature::Ttl]);
        run.feature_case(&[Feature::Ttl], "t::ttl", async {}).await;
        let r = AssertUnwindSafe(run.case("t::base", async { panic!("t::base: broken") }))
            .catch_unwind()
            .await;
        let msg = panic_message(&*r.expect_err("the case panicked"));
        assert!(
            msg.starts_with("t::base: broken") && msg.contains("FAILED t::base"),
            "{msg}"
        );
        assert!(msg.contains("t::ttl (not claimed: TTL)"), "{msg}");
    }
}
