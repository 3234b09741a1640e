//! The reconcile slots the three controllers share, handed out by urgency rather than in
//! arrival order.
//!
//! When more objects want a pass than there are slots, kube-runtime's own limit picks the next
//! one in no particular order: a stamp whose next write starts six minutes of firewall waits as
//! long as a set whose next write is a DNS record. Here a pass waits for a slot with the
//! urgency its last pass left: the typical seconds of the longest chain of resources it has not
//! started yet (`Convergence::unstarted_tail`). An object this process has not reconciled at its
//! current generation has everything ahead of it and goes first. Equal urgencies keep their
//! order of arrival.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

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

/// A fixed number of slots, granted to the most urgent waiter first.
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
    queue: BinaryHeap<Waiter>,
    /// Arrival counter: among equal urgencies the earlier waiter goes first.
    arrivals: u64,
}

struct Waiter {
    urgency: u32,
    arrival: u64,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    /// The heap's greatest is the most urgent, then the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        self.urgency
            .cmp(&other.urgency)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A slot held; given back (to the most urgent waiter) when dropped.
pub struct Slot {
    state: Arc<Mutex<State>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        hand_on(&self.state);
    }
}

/// Hands a freed slot to the most urgent waiter still waiting, or keeps it free.
fn hand_on(state: &Arc<Mutex<State>>) {
    let mut s = lock(state);
    while let Some(waiter) = s.queue.pop() {
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
    grant: Option<oneshot::Receiver<()>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut grant) = self.grant.take() {
            grant.close();
            if grant.try_recv().is_ok() {
                hand_on(&self.state);
            }
        }
    }
}

impl PassSlots {
    /// `slots` passes at once (at least one).
    pub fn new(slots: usize) -> PassSlots {
        PassSlots {
            state: Arc::new(Mutex::new(State {
                free: slots.max(1),
                queue: BinaryHeap::new(),
                arrivals: 0,
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

    /// Waits for a slot for the object `key` at `generation`.
    pub async fn acquire(&self, key: &str, generation: Option<i64>) -> Slot {
        let urgency = self.urgency_of(key, generation);
        let receiver = {
            let mut s = lock(&self.state);
            if s.free > 0 && s.queue.is_empty() {
                s.free -= 1;
                return Slot {
                    state: self.state.clone(),
                };
            }
            let (grant, receiver) = oneshot::channel();
            s.arrivals += 1;
            let arrival = s.arrivals;
            s.queue.push(Waiter {
                urgency,
                arrival,
                grant,
            });
            receiver
        };
        let mut pending = Pending {
            state: self.state.clone(),
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
        lock(&self.state).queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let slots = Arc::new(PassSlots::new(1));
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
    async fn an_object_at_a_new_generation_is_as_urgent_as_an_unknown_one() {
        let slots = PassSlots::new(1);
        slots.left("s", Some(1), 5);
        assert_eq!(slots.urgency_of("s", Some(1)), 5);
        assert_eq!(slots.urgency_of("s", Some(2)), UNKNOWN);
        assert_eq!(slots.urgency_of("other", Some(1)), UNKNOWN);
        slots.forget("s");
        assert_eq!(slots.urgency_of("s", Some(1)), UNKNOWN);
    }

    #[tokio::test]
    async fn a_pass_that_releases_its_slot_lets_the_next_one_start() {
        let slots = Arc::new(PassSlots::new(1));
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
        let slots = Arc::new(PassSlots::new(1));
        let held = slots.acquire("a", None).await;
        let waiting = waiter(&slots, "b");
        settle().await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        // The pool still has its one slot.
        tokio::time::timeout(Duration::from_secs(5), slots.acquire("c", None))
            .await
            .expect("the slot came back");
    }
}
