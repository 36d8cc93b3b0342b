//! Routing rules of subscriptions: each event goes to the path of the first rule whose CEL
//! `match` expression holds for it, as daprd routes (`dapr/dapr:pkg/runtime/pubsub`
//! `CreateRoutingRule`, `pkg/runtime/subscription` `findMatchingRoute`; docs.dapr.io "How to:
//! Route messages to different event handlers").
//!
//! The expression sees one variable, `event`: the CloudEvent as the app would receive it
//! ([`crate::cloudevent::delivered`]), e.g. `event.type == "widget"` or
//! `event.data.amount > 100`. A rule without `match` always holds. The expressions are
//! evaluated with the `cel` crate; one that does not compile refuses the subscription, one
//! that fails on an event (a missing field, a result that is not a boolean) fails that
//! delivery.

use std::sync::Arc;

use crate::cloudevent::{delivered, is_raw_payload};
use crate::{RouteRule, TopicEvent, TopicSubscription};

/// The compiled rules of one subscription, each with the subscription as delivered along
/// that rule (its [`TopicSubscription::route`] set to the rule's path).
pub(crate) struct Routes {
    rules: Vec<(Option<cel::Program>, Arc<TopicSubscription>)>,
    raw_payload: bool,
}

impl Routes {
    /// Compiles the rules of `sub`; a subscription without rules (Layotto's apps) has one
    /// route, its own.
    ///
    /// # Errors
    /// The first expression that does not compile, naming its rule.
    pub(crate) fn new(sub: &TopicSubscription) -> Result<Self, String> {
        let raw_payload = is_raw_payload(&sub.metadata);
        if sub.rules.is_empty() {
            return Ok(Self {
                rules: vec![(None, Arc::new(sub.clone()))],
                raw_payload,
            });
        }
        let mut rules = Vec::with_capacity(sub.rules.len());
        for (i, r) in sub.rules.iter().enumerate() {
            let program = compile(r).map_err(|e| format!("rule {i}: {e}"))?;
            let mut along = sub.clone();
            along.route.clone_from(&r.path);
            rules.push((program, Arc::new(along)));
        }
        Ok(Self { rules, raw_payload })
    }

    /// The subscription to deliver `ev` along: the first rule that holds; `None` when no rule
    /// does (the event is not for the app).
    ///
    /// # Errors
    /// An expression that cannot be evaluated on `ev`.
    pub(crate) fn pick(&self, ev: &TopicEvent) -> Result<Option<&Arc<TopicSubscription>>, String> {
        // The event is built for the first rule with an expression, then reused.
        let mut context: Option<cel::Context<'_, '_>> = None;
        for (program, sub) in &self.rules {
            let Some(program) = program else {
                return Ok(Some(sub));
            };
            let ctx = match &mut context {
                Some(ctx) => ctx,
                None => {
                    let mut ctx = cel::Context::default();
                    let event = serde_json::Value::Object(delivered(ev, self.raw_payload));
                    ctx.add_variable("event", event)
                        .map_err(|e| format!("event is no CEL value: {e}"))?;
                    context.insert(ctx)
                }
            };
            match program.execute(ctx) {
                Ok(cel::Value::Bool(true)) => return Ok(Some(sub)),
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => {
                    return Err(format!(
                        "routing rule for path '{}' gave {other:?}, not a boolean",
                        sub.route
                    ));
                }
                Err(e) => {
                    return Err(format!("routing rule for path '{}' failed: {e}", sub.route));
                }
            }
        }
        Ok(None)
    }
}

/// The program of `rule`'s `match` (`None` for a rule without one, which always holds).
///
/// # Errors
/// The CEL parse error.
pub(crate) fn compile(rule: &RouteRule) -> Result<Option<cel::Program>, String> {
    let expr = rule.match_.trim();
    if expr.is_empty() {
        return Ok(None);
    }
    cel::Program::compile(expr)
        .map(Some)
        .map_err(|e| format!("match '{expr}' is no CEL expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(rules: &[(&str, &str)]) -> TopicSubscription {
        TopicSubscription {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            rules: rules
                .iter()
                .map(|(m, p)| RouteRule {
                    match_: (*m).into(),
                    path: (*p).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn event(type_: &str, data: &str) -> TopicEvent {
        TopicEvent {
            id: "1".into(),
            type_: type_.into(),
            data_content_type: "application/json".into(),
            data: bytes::Bytes::from(data.to_owned()),
            topic: "t".into(),
            pubsub_name: "ps".into(),
            ..Default::default()
        }
    }

    fn routed(r: &Routes, ev: &TopicEvent) -> Option<String> {
        r.pick(ev).expect("evaluates").map(|s| s.route.clone())
    }

    #[test]
    fn the_first_rule_that_holds_wins_and_the_default_catches_the_rest() {
        let r = Routes::new(&sub(&[
            (r#"event.type == "widget""#, "/widgets"),
            ("event.data.amount > 100 && event.topic == 't'", "/big"),
            ("", "/default"),
        ]))
        .expect("compiles");
        assert_eq!(
            routed(&r, &event("widget", r#"{"amount": 500}"#)).as_deref(),
            Some("/widgets")
        );
        assert_eq!(
            routed(&r, &event("gadget", r#"{"amount": 500}"#)).as_deref(),
            Some("/big")
        );
        assert_eq!(
            routed(&r, &event("gadget", r#"{"amount": 5}"#)).as_deref(),
            Some("/default")
        );
    }

    #[test]
    fn no_rule_that_holds_means_no_route_and_a_bad_rule_is_an_error() {
        let r = Routes::new(&sub(&[(r#"event.type == "widget""#, "/widgets")])).expect("compiles");
        assert_eq!(routed(&r, &event("gadget", "{}")), None);
        let r = Routes::new(&sub(&[("event.data.missing > 1", "/x")])).expect("compiles");
        assert!(r.pick(&event("a", "{}")).is_err());
        let r = Routes::new(&sub(&[("event.type", "/x")])).expect("compiles");
        let e = r.pick(&event("a", "{}")).expect_err("not a boolean");
        assert!(e.contains("not a boolean"), "{e}");
        let e = Routes::new(&sub(&[("", "/a"), ("event.type ==", "/b")]))
            .err()
            .expect("does not compile");
        assert!(e.starts_with("rule 1: match 'event.type =='"), "{e}");
    }

    #[test]
    fn layotto_subscriptions_without_rules_keep_their_route() {
        let mut s = sub(&[]);
        s.route = "/own".into();
        let r = Routes::new(&s).expect("no rules");
        assert_eq!(routed(&r, &event("a", "{}")).as_deref(), Some("/own"));
    }
}
