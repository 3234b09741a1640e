//! The reconcile slots the three controllers share, handed out by urgency rather than in
//! arrival order.
//!
//! When more objects want a pass than there are slots, kube-runtime's own limit picks the next
//! one in no particular order: a stamp whose next write starts six minutes of firewall waits as
//! long as a set whose next write is a DNS record. Here a pass waits for a slot with the
//! urgency its last pass left: the typical seconds of the longest chain of resources it has not
//! started yet (`Convergence::unstarted_tail`). An object this process has not reconciled at its
//! current generation has everything ahead of it and goes first. Equal urgencies keep their
//! order of arrival, and a pass that has waited past a bound goes first whatever its urgency,
//! so that none waits for ever.
//!
//! The queue is also what a running pass makes way for (`waiting_passes`): a write of that pass
//! that would wait for ARM's budget while a more urgent pass waits for a slot is left for later,
//! and the slot goes to the more urgent one.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::azure::Contenders;

/// The urgency of an object this process knows nothing about: all its work is ahead.
pub const UNKNOWN: u32 = u32::MAX;

tokio::task_local! {
    static HELD: RefCell<Option<Slot>>;
}

/// Runs `pass` holding `slot` until it ends or calls `release`.
pub async fn holding<F: std::future::Future>(slot: Slot, pass: F) -> F::Output {
    HELD.scope(RefCell::new(Some(slot)), pass).await
}

/// Gives back the slot the current pass holds, if any: what is left of the pass (writing its
/// status to the API server) neither reads Azure nor needs much CPU, and the next object's
/// pass should not wait for it.
fn release() {
    let _ = HELD.try_with(|held| held.borrow_mut().take());
}

/// A fixed number of slots, granted to an overdue waiter first, else to the most urgent.
pub struct PassSlots {
    state: Arc<Mutex<State>>,
    /// Passes past their Azure part (see `finishing`), as many as there are slots: each still
    /// holds its plan and what it read until its status is written, and under a slow API
    /// server unbounded they held hundreds of megabytes at a thousand stamps.
    finishing: tokio::sync::Semaphore,
    /// Per object key: the generation its last pass saw and the urgency it left.
    urgency: Mutex<HashMap<String, (Option<i64>, u32)>>,
}

struct State {
    free: usize,
    /// Waiters by arrival: among equal urgencies the earlier goes first, and one waiting
    /// longer than `overdue_after` goes before any other.
    by_arrival: BTreeMap<u64, Waiter>,
    /// The same waiters by urgency then arrival: the last is the most urgent, then earliest.
    by_urgency: BTreeSet<(u32, Reverse<u64>)>,
    arrivals: u64,
    /// How long a waiter waits before it goes first whatever its urgency: objects more urgent
    /// keep coming (a thousand stamps polling for their Front Door), and without a bound a
    /// GlobalPlane whose next step is short would never get its turn.
    overdue_after: Duration,
}

struct Waiter {
    urgency: u32,
    since: Instant,
    grant: oneshot::Sender<()>,
}

impl State {
    /// Takes the waiter to grant next: the earliest if it is overdue, else the most urgent.
    fn next(&mut self) -> Option<Waiter> {
        let (&earliest, waiter) = self.by_arrival.first_key_value()?;
        let arrival = if waiter.since.elapsed() >= self.overdue_after {
            earliest
        } else {
            self.by_urgency.last()?.1 .0
        };
        let waiter = self.by_arrival.remove(&arrival)?;
        self.by_urgency.remove(&(waiter.urgency, Reverse(arrival)));
        Some(waiter)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The queue of passes waiting for a slot, seen from ARM's budget.
struct WaitingPasses(Arc<Mutex<State>>);

impl Contenders for WaitingPasses {
    fn most_urgent(&self) -> Option<u32> {
        lock(&self.0).by_urgency.last().map(|(urgency, _)| *urgency)
    }
}

/// A slot held; given back (to the next waiter, see `State::next`) when dropped.
pub struct Slot {
    state: Arc<Mutex<State>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        hand_on(&self.state);
    }
}

/// Hands a freed slot to the next waiter still waiting (see `State::next`), or keeps it free.
fn hand_on(state: &Arc<Mutex<State>>) {
    let mut s = lock(state);
    while let Some(waiter) = s.next() {
        if waiter.grant.send(()).is_ok() {
            return;
        }
        // That waiter stopped waiting: the next one.
    }
    s.free += 1;
}

/// A waiter's side of a grant: a slot granted to a waiter that stopped waiting before it saw
/// the grant goes back to the pool.
struct Pending {
    state: Arc<Mutex<State>>,
    arrival: u64,
    grant: Option<oneshot::Receiver<()>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut grant) = self.grant.take() else {
            return;
        };
        {
            // Still queued: it leaves, so that nobody makes way for a pass that will not come.
            let mut s = lock(&self.state);
            if let Some(waiter) = s.by_arrival.remove(&self.arrival) {
                s.by_urgency
                    .remove(&(waiter.urgency, Reverse(self.arrival)));
                return;
            }
        }
        grant.close();
        if grant.try_recv().is_ok() {
            hand_on(&self.state);
        }
    }
}

impl PassSlots {
    /// `slots` passes at once (at least one); a pass waiting longer than `overdue_after`
    /// goes next whatever its urgency.
    pub fn new(slots: usize, overdue_after: Duration) -> PassSlots {
        PassSlots {
            state: Arc::new(Mutex::new(State {
                free: slots.max(1),
                by_arrival: BTreeMap::new(),
                by_urgency: BTreeSet::new(),
                arrivals: 0,
                overdue_after,
            })),
            urgency: Mutex::new(HashMap::new()),
            finishing: tokio::sync::Semaphore::new(slots.max(1)),
        }
    }

    /// Moves the current pass from its slot to the finishing stage (writing status), once
    /// there is room there; until then it keeps its slot.
    pub async fn finishing(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = self.finishing.acquire().await.ok();
        release();
        permit
    }

    /// The passes waiting for a slot, as work a pass waiting for ARM's budget makes way for
    /// (see `azure::yielding_to`).
    pub fn waiting_passes(&self) -> Arc<dyn Contenders> {
        Arc::new(WaitingPasses(self.state.clone()))
    }

    /// Waits for a slot for the object `key` at `generation`.
    pub async fn acquire(&self, key: &str, generation: Option<i64>) -> Slot {
        let urgency = self.urgency_of(key, generation);
        let (receiver, arrival) = {
            let mut s = lock(&self.state);
            if s.free > 0 && s.by_arrival.is_empty() {
                s.free -= 1;
                return Slot {
                    state: self.state.clone(),
                };
            }
            let (grant, receiver) = oneshot::channel();
            s.arrivals += 1;
            let arrival = s.arrivals;
            s.by_arrival.insert(
                arrival,
                Waiter {
                    urgency,
                    since: Instant::now(),
                    grant,
                },
            );
            s.by_urgency.insert((urgency, Reverse(arrival)));
            (receiver, arrival)
        };
        let mut pending = Pending {
            state: self.state.clone(),
            arrival,
            grant: Some(receiver),
        };
        if let Some(grant) = pending.grant.as_mut() {
            // A waiter's sender is dropped unsent only when its grant was refused, which needs
            // this receiver gone: the wait ends with the slot.
            let _ = grant.await;
        }
        pending.grant = None;
        Slot {
            state: self.state.clone(),
        }
    }

    /// Records the urgency the pass of `key` at `generation` left for its next pass.
    pub fn left(&self, key: &str, generation: Option<i64>, urgency: u32) {
        lock(&self.urgency).insert(key.to_string(), (generation, urgency));
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&self, key: &str) {
        lock(&self.urgency).remove(key);
    }

    fn urgency_of(&self, key: &str, generation: Option<i64>) -> u32 {
        match lock(&self.urgency).get(key) {
            Some((seen, urgency)) if *seen == generation => *urgency,
            _ => UNKNOWN,
        }
    }

    /// Passes waiting for a slot.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.state).by_arrival.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// A task that waits for a slot for `key` and gives it back at once.
    fn waiter(slots: &Arc<PassSlots>, key: &'static str) -> tokio::task::JoinHandle<()> {
        let slots = slots.clone();
        tokio::spawn(async move {
            let _slot = slots.acquire(key, None).await;
        })
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_most_urgent_waiter_then_the_earliest() {
        let slots = Arc::new(PassSlots::new(1, Duration::from_secs(60)));
        slots.left("late-low", Some(1), 10);
        slots.left("early-low", Some(1), 10);
        slots.left("high", Some(1), 400);
        let held = slots.acquire("first", Some(1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for key in ["early-low", "late-low", "high"] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(key, Some(1)).await;
                lock(&order).push(key);
                settle().await;
            }));
            settle().await;
        }
        assert_eq!(slots.waiting(), 3);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), vec!["high", "early-low", "late-low"]);
    }

    #[tokio::test]
    async fn a_waiter_overdue_goes_before_more_urgent_ones_that_came_later() {
        let slots = Arc::new(PassSlots::new(1, Duration::from_millis(100)));
        slots.left("low", Some(1), 10);
        slots.left("high", Some(1), 400);
        let held = slots.acquire("first", Some(1)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for key in ["low", "high"] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(key, Some(1)).await;
                lock(&order).push(key);
            }));
            settle().await;
        }
        // "low" has waited past the bound by the time the slot is free.
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), vec!["low", "high"]);
    }

    #[tokio::test]
    async fn waiting_passes_tell_the_most_urgent_urgency() {
        let slots = Arc::new(PassSlots::new(1, Duration::from_secs(60)));
        let waiting = slots.waiting_passes();
        assert_eq!(waiting.most_urgent(), None);
        slots.left("low", Some(1), 10);
        slots.left("high", Some(1), 400);
        let held = slots.acquire("first", Some(1)).await;
        let at_generation_one = |key: &'static str| {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire(key, Some(1)).await;
            })
        };
        let low = at_generation_one("low");
        settle().await;
        assert_eq!(waiting.most_urgent(), Some(10));
        let high = at_generation_one("high");
        settle().await;
        assert_eq!(waiting.most_urgent(), Some(400));
        drop(held);
        high.await.unwrap();
        low.await.unwrap();
        assert_eq!(waiting.most_urgent(), None);
    }

    #[tokio::test]
    async fn an_object_at_a_new_generation_is_as_urgent_as_an_unknown_one() {
        let slots = PassSlots::new(1, Duration::from_secs(60));
        slots.left("s", Some(1), 5);
        assert_eq!(slots.urgency_of("s", Some(1)), 5);
        assert_eq!(slots.urgency_of("s", Some(2)), UNKNOWN);
        assert_eq!(slots.urgency_of("other", Some(1)), UNKNOWN);
        slots.forget("s");
        assert_eq!(slots.urgency_of("s", Some(1)), UNKNOWN);
    }

    #[tokio::test]
    async fn a_pass_that_releases_its_slot_lets_the_next_one_start() {
        let slots = Arc::new(PassSlots::new(1, Duration::from_secs(60)));
        let slot = slots.acquire("a", None).await;
        let next = waiter(&slots, "b");
        holding(slot, async {
            settle().await;
            assert_eq!(slots.waiting(), 1);
            let _finishing = slots.finishing().await;
            tokio::time::timeout(Duration::from_secs(5), next)
                .await
                .expect("the next pass started while this one went on")
                .unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_waiter_that_stops_waiting_gives_its_slot_back() {
        let slots = Arc::new(PassSlots::new(1, Duration::from_secs(60)));
        let held = slots.acquire("a", None).await;
        let waiting = waiter(&slots, "b");
        settle().await;
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(slots.waiting(), 0, "it left the queue");
        assert_eq!(slots.waiting_passes().most_urgent(), None);
        drop(held);
        // The pool still has its one slot.
        tokio::time::timeout(Duration::from_secs(5), slots.acquire("c", None))
            .await
            .expect("the slot came back");
    }
}
