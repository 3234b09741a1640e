//! Client-side throttle budget mirroring ARM's token buckets, fed back by the
//! `x-ms-ratelimit-remaining-*` headers, with a per-subscription breaker that a 429 opens for its
//! Retry-After — for every caller, not just the one that was throttled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Operation class, as ARM counts requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestClass {
    /// GET, including operation polls.
    Read,
    /// PUT, PATCH, POST.
    Write,
    /// DELETE.
    Delete,
}

impl RequestClass {
    /// The response header that reports the bucket.
    pub fn remaining_header(self) -> &'static str {
        match self {
            RequestClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
            RequestClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
            RequestClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            RequestClass::Read => "read",
            RequestClass::Write => "write",
            RequestClass::Delete => "delete",
        }
    }
}

/// Capacity and refill per second of each class's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetLimits {
    /// Reads (capacity, refill per second).
    pub reads: (f64, f64),
    /// Writes.
    pub writes: (f64, f64),
    /// Deletes.
    pub deletes: (f64, f64),
}

impl Default for BudgetLimits {
    /// ARM's: reads 250 refilling 25/s, writes 200 at 10/s, deletes 200 at 10/s.
    fn default() -> Self {
        BudgetLimits {
            reads: (250.0, 25.0),
            writes: (200.0, 10.0),
            deletes: (200.0, 10.0),
        }
    }
}

impl BudgetLimits {
    /// These limits with every refill rate multiplied by `factor`: an emulator that runs time
    /// faster than Azure refills its buckets faster too.
    pub fn refill_scaled(self, factor: f64) -> BudgetLimits {
        let scale = |(capacity, refill): (f64, f64)| (capacity, refill * factor);
        BudgetLimits {
            reads: scale(self.reads),
            writes: scale(self.writes),
            deletes: scale(self.deletes),
        }
    }

    fn of(&self, class: RequestClass) -> (f64, f64) {
        match class {
            RequestClass::Read => self.reads,
            RequestClass::Write => self.writes,
            RequestClass::Delete => self.deletes,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Subscription {
    buckets: HashMap<RequestClass, Bucket>,
    open_until: Option<Instant>,
}

/// The budget of every subscription this process talks to.
#[derive(Default)]
pub struct ThrottleBudget {
    limits: BudgetLimits,
    subscriptions: Mutex<HashMap<String, Subscription>>,
}

impl ThrottleBudget {
    /// A budget with ARM's limits and full buckets.
    pub fn new() -> ThrottleBudget {
        ThrottleBudget::default()
    }

    /// A budget with other limits (a subscription with a different quota; tests).
    pub fn with_limits(limits: BudgetLimits) -> ThrottleBudget {
        ThrottleBudget {
            limits,
            subscriptions: Mutex::default(),
        }
    }

    /// How long to wait before a request of `class` may be sent for `subscription`; takes a
    /// token when the answer is zero.
    pub fn reserve(&self, subscription: &str, class: RequestClass) -> Duration {
        let now = Instant::now();
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        if let Some(until) = sub.open_until {
            if until > now {
                return until - now;
            }
            sub.open_until = None;
        }
        let (capacity, refill) = self.limits.of(class);
        let bucket = sub.buckets.entry(class).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / refill)
        }
    }

    /// Aligns the bucket with what ARM says is left (ARM's count wins when it is lower: other
    /// clients share the subscription's budget).
    pub fn observe(&self, subscription: &str, class: RequestClass, remaining: u64) {
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        let (capacity, _) = self.limits.of(class);
        let bucket = sub.buckets.entry(class).or_insert(Bucket {
            tokens: capacity,
            at: Instant::now(),
        });
        bucket.tokens = bucket.tokens.min(remaining as f64);
    }

    /// Opens the breaker of `subscription` for `retry_after` (after a 429).
    pub fn trip(&self, subscription: &str, retry_after: Duration) {
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        let until = Instant::now() + retry_after;
        sub.open_until = Some(sub.open_until.map_or(until, |u| u.max(until)));
        // When the breaker closes, callers drain through empty buckets at the refill rate
        // instead of all at once (which would only earn the next 429).
        for bucket in sub.buckets.values_mut() {
            bucket.tokens = 0.0;
            bucket.at = until;
        }
    }

    /// Tokens left in a bucket (for metrics).
    pub fn tokens(&self, subscription: &str, class: RequestClass) -> f64 {
        let subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.get(&subscription.to_ascii_lowercase())
            .and_then(|s| s.buckets.get(&class))
            .map_or(self.limits.of(class).0, |b| b.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_stops_every_class_of_the_subscription_only() {
        let budget = ThrottleBudget::new();
        assert_eq!(budget.reserve("s", RequestClass::Read), Duration::ZERO);
        budget.trip("s", Duration::from_secs(5));
        assert!(budget.reserve("s", RequestClass::Write) > Duration::from_secs(4));
        assert!(
            budget.reserve("S", RequestClass::Read) > Duration::from_secs(4),
            "subscriptions compare case-insensitively"
        );
        assert_eq!(budget.reserve("other", RequestClass::Read), Duration::ZERO);
    }

    #[test]
    fn remaining_headers_lower_the_bucket() {
        let budget = ThrottleBudget::new();
        budget.observe("s", RequestClass::Write, 0);
        assert!(budget.reserve("s", RequestClass::Write) > Duration::ZERO);
        assert_eq!(budget.reserve("s", RequestClass::Delete), Duration::ZERO);
    }
}
