//! Client-side throttle budget mirroring ARM's token buckets, fed back by the
//! `x-ms-ratelimit-remaining-*` headers, with a per-subscription breaker that a 429 opens for its
//! Retry-After — for every caller, not just the one that was throttled.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static PRIORITY: u32;
    static PATIENCE: Duration;
    static CONTENDERS: Arc<dyn Contenders>;
}

/// Runs `work` with its ARM requests at `priority`. When a bucket runs short, waiting requests
/// of a higher priority take its tokens first: writes on a graph's longest chain (a firewall's
/// policy) go before those with time to spare (the DNS zones beside it), so a burst of new
/// stamps does not queue every firewall behind every zone. Requests made outside it — group
/// listings, operation polls — go first of all: they are few, and what they tell moves every
/// chain on.
pub async fn with_priority<F: Future>(priority: u32, work: F) -> F::Output {
    PRIORITY.scope(priority, work).await
}

/// The priority of the requests the current task makes.
pub fn current_priority() -> u32 {
    PRIORITY.try_with(|p| *p).unwrap_or(u32::MAX)
}

/// Runs `work` with its ARM writes sent only when the budget lets them go within `patience`;
/// a write that would wait longer fails at once with `AzureError::Deferred`, unsent. A pass
/// waiting for a token behind the writes of more urgent chains holds its reconcile slot and
/// keeps its own next wave back: better to end the pass and come again when the budget has
/// room.
pub async fn with_patience<F: Future>(patience: Duration, work: F) -> F::Output {
    PATIENCE.scope(patience, work).await
}

/// How long the current task's writes may wait for the budget, if it set a limit.
pub fn current_patience() -> Option<Duration> {
    PATIENCE.try_with(|p| *p).ok()
}

/// Work waiting for room to start at all — a reconcile slot the current task holds while it
/// waits for the budget — that a write of lower priority should make way for.
pub trait Contenders: Send + Sync {
    /// The priority of the most urgent work waiting, if any waits.
    fn most_urgent(&self) -> Option<u32>;
}

/// Runs `work` making way for `contenders`: a write of a task with a patience (see
/// `with_patience`) that would wait for a token at all while more urgent work waits for room
/// is given up unsent at once. The budget orders the requests it sees by priority, but it
/// cannot see those of a pass not yet started: without this, the writes with time to spare of
/// the passes running (a stamp's DNS zones) take the tokens one by one, and the passes waiting
/// behind them (another stamp's next step towards its firewall) never ask.
pub async fn yielding_to<F: Future>(contenders: Arc<dyn Contenders>, work: F) -> F::Output {
    CONTENDERS.scope(contenders, work).await
}

/// Whether work more urgent than `priority` waits for room to start.
pub fn outranked_by_contenders(priority: u32) -> bool {
    CONTENDERS
        .try_with(|c| c.most_urgent().is_some_and(|u| u > priority))
        .unwrap_or(false)
}

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

/// How far ARM's count may run ahead of this mirror: ARM takes a token when a request arrives,
/// the mirror when it leaves, and requests reserved in a burst arrive over a spread of
/// latencies — so ARM's bucket starts refilling a little after the mirror's. A 429 stops the
/// whole subscription for at least a second; the mirror keeps this much time's refill in
/// hand instead (at most a quarter of what the bucket holds beyond one token, so a request
/// can always be sent).
const SKEW: Duration = Duration::from_millis(100);

/// The tokens the mirror keeps in hand (see `SKEW`).
fn margin(capacity: f64, refill: f64) -> f64 {
    (refill * SKEW.as_secs_f64()).min((capacity - 1.0).max(0.0) / 4.0)
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Requests waiting for a token, by priority.
    waiting: BTreeMap<u32, usize>,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            at: now,
            waiting: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
struct Subscription {
    buckets: HashMap<RequestClass, Bucket>,
    open_until: Option<Instant>,
}

impl Subscription {
    /// The bucket of `class`, full when first asked for.
    fn bucket(&mut self, class: RequestClass, limits: &BudgetLimits) -> &mut Bucket {
        let capacity = limits.of(class).0;
        self.buckets
            .entry(class)
            .or_insert_with(|| Bucket::full(capacity, Instant::now()))
    }
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

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscription>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long to wait before a request of `class` may be sent for `subscription` at the
    /// current task's priority; takes a token when the answer is zero.
    pub fn reserve(&self, subscription: &str, class: RequestClass) -> Duration {
        self.reserve_at(subscription, class, current_priority())
    }

    /// Marks a request of `priority` as waiting for a token until the ticket is dropped:
    /// meanwhile no request of a lower priority takes one.
    pub fn queue(&self, subscription: &str, class: RequestClass, priority: u32) -> WaitTicket<'_> {
        let mut subs = self.subscriptions();
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        let bucket = sub.bucket(class, &self.limits);
        *bucket.waiting.entry(priority).or_default() += 1;
        WaitTicket {
            budget: self,
            subscription: subscription.to_ascii_lowercase(),
            class,
            priority,
        }
    }

    /// As `reserve`, at `priority`: a token is taken only when no request of a higher priority
    /// waits for one.
    pub fn reserve_at(&self, subscription: &str, class: RequestClass, priority: u32) -> Duration {
        let now = Instant::now();
        let mut subs = self.subscriptions();
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        if let Some(until) = sub.open_until {
            if until > now {
                return until - now;
            }
            sub.open_until = None;
        }
        let (capacity, refill) = self.limits.of(class);
        let needed = 1.0 + margin(capacity, refill);
        let bucket = sub.bucket(class, &self.limits);
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * refill).min(capacity);
        bucket.at = now;
        let outranked = bucket
            .waiting
            .range((Bound::Excluded(priority), Bound::Unbounded))
            .next()
            .is_some();
        if bucket.tokens < needed {
            Duration::from_secs_f64((needed - bucket.tokens) / refill)
        } else if outranked {
            // A token is in, but a higher request takes it: look again once the next one is.
            Duration::from_secs_f64(1.0 / refill)
        } else {
            bucket.tokens -= 1.0;
            Duration::ZERO
        }
    }

    /// How long a request of `class` at `priority` would wait now: for the breaker, then for
    /// a token after the requests of higher priority already waiting took theirs.
    pub fn expected_wait(
        &self,
        subscription: &str,
        class: RequestClass,
        priority: u32,
    ) -> Duration {
        let now = Instant::now();
        let mut subs = self.subscriptions();
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        let breaker = sub
            .open_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let (capacity, refill) = self.limits.of(class);
        let bucket = sub.bucket(class, &self.limits);
        let tokens = (bucket.tokens
            + now.saturating_duration_since(bucket.at).as_secs_f64() * refill)
            .min(capacity);
        let ahead: usize = bucket
            .waiting
            .range((Bound::Excluded(priority), Bound::Unbounded))
            .map(|(_, count)| count)
            .sum();
        let short = ahead as f64 + 1.0 + margin(capacity, refill) - tokens;
        let for_token = if short > 0.0 {
            Duration::from_secs_f64(short / refill)
        } else {
            Duration::ZERO
        };
        breaker.max(for_token)
    }

    /// Aligns the bucket with what ARM says is left (ARM's count wins when it is lower: other
    /// clients share the subscription's budget).
    pub fn observe(&self, subscription: &str, class: RequestClass, remaining: u64) {
        let mut subs = self.subscriptions();
        let sub = subs.entry(subscription.to_ascii_lowercase()).or_default();
        let bucket = sub.bucket(class, &self.limits);
        bucket.tokens = bucket.tokens.min(remaining as f64);
    }

    /// Opens the breaker of `subscription` for `retry_after` (after a 429).
    pub fn trip(&self, subscription: &str, retry_after: Duration) {
        let mut subs = self.subscriptions();
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
        let subs = self.subscriptions();
        subs.get(&subscription.to_ascii_lowercase())
            .and_then(|s| s.buckets.get(&class))
            .map_or(self.limits.of(class).0, |b| b.tokens)
    }
}

/// A request waiting for a token (see `ThrottleBudget::queue`); dropping it ends the wait.
pub struct WaitTicket<'a> {
    budget: &'a ThrottleBudget,
    subscription: String,
    class: RequestClass,
    priority: u32,
}

impl Drop for WaitTicket<'_> {
    fn drop(&mut self) {
        let mut subs = self.budget.subscriptions();
        let Some(bucket) = subs
            .get_mut(&self.subscription)
            .and_then(|s| s.buckets.get_mut(&self.class))
        else {
            return;
        };
        if let Some(count) = bucket.waiting.get_mut(&self.priority) {
            *count -= 1;
            if *count == 0 {
                bucket.waiting.remove(&self.priority);
            }
        }
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

    #[test]
    fn the_expected_wait_counts_the_tokens_that_requests_ahead_take() {
        // A margin of one token (100 ms of refill): a request needs two in the bucket.
        let budget = ThrottleBudget::with_limits(BudgetLimits {
            reads: (1.0, 1.0),
            writes: (9.0, 10.0),
            deletes: (1.0, 1.0),
        });
        let sub = "sub";
        assert_eq!(
            budget.expected_wait(sub, RequestClass::Write, 5),
            Duration::ZERO
        );
        let mut sent = 0;
        while budget.reserve_at(sub, RequestClass::Write, 5).is_zero() {
            sent += 1;
        }
        assert_eq!(sent, 8, "all but the margin's token");
        // Three requests of higher priority wait: theirs, then this one's, then the margin.
        let _ahead: Vec<_> = (0..3)
            .map(|_| budget.queue(sub, RequestClass::Write, 9))
            .collect();
        let behind = budget.expected_wait(sub, RequestClass::Write, 5);
        assert!(behind > Duration::from_millis(350), "{behind:?}");
        assert!(behind <= Duration::from_millis(400), "{behind:?}");
        // Those ahead wait only for the refill.
        assert!(budget.expected_wait(sub, RequestClass::Write, 10) <= Duration::from_millis(100));
        budget.trip(sub, Duration::from_secs(30));
        assert!(budget.expected_wait(sub, RequestClass::Write, 10) > Duration::from_secs(29));
    }

    #[test]
    fn the_margin_never_keeps_a_small_bucket_from_sending() {
        for capacity in [1.0, 2.0, 3.0] {
            let budget = ThrottleBudget::with_limits(BudgetLimits {
                writes: (capacity, 1000.0),
                ..BudgetLimits::default()
            });
            assert_eq!(
                budget.reserve_at("s", RequestClass::Write, 1),
                Duration::ZERO,
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn a_waiting_request_of_higher_priority_takes_the_next_token_first() {
        let budget = ThrottleBudget::with_limits(BudgetLimits {
            writes: (1.0, 1000.0),
            ..BudgetLimits::default()
        });
        assert_eq!(
            budget.reserve_at("s", RequestClass::Write, 1),
            Duration::ZERO
        );
        let urgent = budget.queue("s", RequestClass::Write, 400);
        std::thread::sleep(Duration::from_millis(5));
        // A token is back, but the firewall's policy waits for it: the DNS zone does not take it.
        assert!(budget.reserve_at("s", RequestClass::Write, 30) > Duration::ZERO);
        assert_eq!(
            budget.reserve_at("s", RequestClass::Write, 400),
            Duration::ZERO
        );
        drop(urgent);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            budget.reserve_at("s", RequestClass::Write, 30),
            Duration::ZERO
        );
        // Other classes and subscriptions are not held back.
        let _urgent = budget.queue("s", RequestClass::Write, 400);
        assert_eq!(
            budget.reserve_at("s", RequestClass::Read, 30),
            Duration::ZERO
        );
        assert_eq!(
            budget.reserve_at("t", RequestClass::Write, 30),
            Duration::ZERO
        );
    }
}
