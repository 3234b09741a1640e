//! ARM's request throttling: a token bucket per subscription and operation class.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Operation class of a request, as ARM counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationClass {
    /// GET (and operation polls).
    Read,
    /// PUT, PATCH, POST.
    Write,
    /// DELETE.
    Delete,
}

impl OperationClass {
    /// Suffix of the `x-ms-ratelimit-remaining-subscription-*` header.
    pub fn header(self) -> &'static str {
        match self {
            OperationClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
            OperationClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
            OperationClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
}

/// Capacity and refill per second of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Tokens when full.
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_second: f64,
}

/// Limits per class. Defaults are ARM's: reads 250 (25/s), writes 200 (10/s), deletes 200 (10/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleLimits {
    /// Reads.
    pub reads: BucketLimit,
    /// Writes.
    pub writes: BucketLimit,
    /// Deletes.
    pub deletes: BucketLimit,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            reads: BucketLimit {
                capacity: 250.0,
                refill_per_second: 25.0,
            },
            writes: BucketLimit {
                capacity: 200.0,
                refill_per_second: 10.0,
            },
            deletes: BucketLimit {
                capacity: 200.0,
                refill_per_second: 10.0,
            },
        }
    }
}

impl ThrottleLimits {
    fn of(&self, class: OperationClass) -> BucketLimit {
        match class {
            OperationClass::Read => self.reads,
            OperationClass::Write => self.writes,
            OperationClass::Delete => self.deletes,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// All buckets.
pub struct Throttle {
    limits: ThrottleLimits,
    buckets: HashMap<(String, OperationClass), Bucket>,
}

/// Outcome of taking a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Admitted; this many tokens remain.
    Admitted(u64),
    /// Refused; retry after this long.
    Throttled(Duration),
}

impl Throttle {
    /// Buckets with `limits`, all full.
    pub fn new(limits: ThrottleLimits) -> Throttle {
        Throttle {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `class` in `subscription` at `now`.
    pub fn admit(&mut self, subscription: &str, class: OperationClass, now: Instant) -> Admission {
        let limit = self.limits.of(class);
        let bucket = self
            .buckets
            .entry((subscription.to_ascii_lowercase(), class))
            .or_insert(Bucket {
                tokens: limit.capacity,
                at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.refill_per_second).min(limit.capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Admission::Admitted(bucket.tokens.floor() as u64)
        } else {
            let wait = (1.0 - bucket.tokens) / limit.refill_per_second.max(f64::MIN_POSITIVE);
            Admission::Throttled(Duration::from_secs_f64(wait.max(0.001)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_then_refills() {
        let mut t = Throttle::new(ThrottleLimits::default());
        let now = Instant::now();
        for i in 0..250 {
            assert_eq!(
                t.admit("s", OperationClass::Read, now),
                Admission::Admitted(249 - i)
            );
        }
        let Admission::Throttled(wait) = t.admit("s", OperationClass::Read, now) else {
            panic!("bucket should be empty")
        };
        assert!(wait <= Duration::from_millis(41), "{wait:?}");
        // Another subscription and another class have their own buckets.
        assert!(matches!(
            t.admit("other", OperationClass::Read, now),
            Admission::Admitted(_)
        ));
        assert!(matches!(
            t.admit("s", OperationClass::Write, now),
            Admission::Admitted(199)
        ));
        // One second refills 25 reads.
        assert_eq!(
            t.admit("s", OperationClass::Read, now + Duration::from_secs(1)),
            Admission::Admitted(24)
        );
    }
}
