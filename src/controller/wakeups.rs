//! Reconciling an object again the moment an Azure operation it started ends.
//!
//! A pass hands back the operations still running (they are persisted in status). Without this,
//! the next wave of the object waits for the poll period after its operation ends, and a
//! reconcile that waits inline holds one of the few reconcile slots the whole time. Here each
//! such operation gets one watcher task that polls it at Azure's pace (`ArmClient::wait`) and,
//! when it ends, however it ends, asks the object's controller for a reconcile. What it saw is
//! kept for that reconcile: an operation seen to succeed is not polled again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::converge::Watched;
use crate::azure::{ArmClient, LroState};

/// How long an operation seen to succeed is remembered for a reconcile that never comes (its
/// object was deleted meanwhile).
const SUCCEEDED_KEPT: Duration = Duration::from_secs(3600);

/// How often the forgetting of such news is done: a scan of every kept entry at each operation's
/// end cost a thousand stamps' operator more CPU than the news itself.
const SUCCEEDED_PRUNED_EVERY: Duration = Duration::from_secs(60);

/// An object to reconcile again: namespace (if any) and name.
type Target = (Option<String>, String);

/// The controllers' wake-up channels (one per kind) and the operations being watched.
#[derive(Default)]
pub struct Wakeups {
    channels: Mutex<HashMap<String, UnboundedSender<Target>>>,
    /// Poll URLs of the operations with a watcher.
    watching: Arc<Mutex<HashSet<String>>>,
    /// The operations a watcher saw succeed, until a pass takes the news.
    succeeded: Arc<Mutex<SucceededNews>>,
}

/// Poll URLs of the operations a watcher saw succeed, with when and the hash of the body each
/// wrote.
#[derive(Default)]
struct SucceededNews {
    by_poll_url: HashMap<String, (Instant, u64)>,
    last_pruned: Option<Instant>,
}

impl SucceededNews {
    fn insert(&mut self, poll_url: String, hash: u64) {
        let now = Instant::now();
        if self
            .last_pruned
            .is_none_or(|at| now.duration_since(at) >= SUCCEEDED_PRUNED_EVERY)
        {
            self.by_poll_url
                .retain(|_, (at, _)| now.duration_since(*at) < SUCCEEDED_KEPT);
            self.last_pruned = Some(now);
        }
        self.by_poll_url.insert(poll_url, (now, hash));
    }

    fn take(&mut self, poll_url: &str) -> Option<u64> {
        self.by_poll_url.remove(poll_url).map(|(_, hash)| hash)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wakeups {
    /// The stream of objects of kind `K` to reconcile again, for `Controller::reconcile_on`.
    /// Called once per kind, before any operation of that kind is watched.
    pub fn stream<K>(&self) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        let (tx, rx) = unbounded_channel::<Target>();
        lock(&self.channels).insert(K::kind(&()).into_owned(), tx);
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|target| (target, rx))
        })
        .map(|(namespace, name)| {
            let object = ObjectRef::new(&name);
            match namespace {
                Some(ns) => object.within(&ns),
                None => object,
            }
        })
    }

    /// Reconciles the object of kind `K` named `name` (in `namespace`) again.
    pub fn wake<K>(&self, namespace: Option<&str>, name: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        if let Some(tx) = lock(&self.channels).get(K::kind(&()).as_ref()) {
            // The controller is gone only when the process is stopping.
            let _ = tx.send((namespace.map(str::to_string), name.to_string()));
        }
    }

    /// Watches each of `operations` (not already watched) until it ends, then wakes `obj`.
    /// `started`: the hash of the body each operation this process started writes (by poll
    /// URL); only those are told as succeeded, the rest are left for a poll to tell.
    pub fn after<K>(
        &self,
        arm: &Arc<ArmClient>,
        obj: &K,
        operations: &[LroState],
        started: &BTreeMap<String, u64>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let Some(tx) = lock(&self.channels).get(K::kind(&()).as_ref()).cloned() else {
            // The controller of this kind was not started with a wake-up stream (tests).
            return;
        };
        let target: Target = (
            obj.meta().namespace.clone(),
            obj.meta().name.clone().unwrap_or_default(),
        );
        for op in operations {
            if !lock(&self.watching).insert(op.poll_url.clone()) {
                continue;
            }
            let (arm, op, tx, target) = (arm.clone(), op.clone(), tx.clone(), target.clone());
            let written = started.get(&op.poll_url).copied();
            let (watching, succeeded) = (self.watching.clone(), self.succeeded.clone());
            tokio::spawn(async move {
                // A failure is the next pass's to read (it writes the resource again); the error
                // is not this task's to report.
                if let (Ok(()), Some(hash)) = (arm.wait(&op).await, written) {
                    lock(&succeeded).insert(op.poll_url.clone(), hash);
                }
                lock(&watching).remove(&op.poll_url);
                // The controller is gone only when the process is stopping.
                let _ = tx.send(target);
            });
        }
    }

    /// What the watchers know of `op`. That it succeeded is told once: the pass that hears it
    /// records the resource as written.
    pub fn watched(&self, op: &LroState) -> Watched {
        if lock(&self.watching).contains(&op.poll_url) {
            Watched::Running
        } else if let Some(hash) = lock(&self.succeeded).take(&op.poll_url) {
            Watched::Succeeded(hash)
        } else {
            Watched::Unknown
        }
    }
}
