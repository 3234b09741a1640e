//! Reconciling an object again the moment an Azure operation it started ends.
//!
//! A pass hands back the operations still running (they are persisted in status). Without this,
//! the next wave of the object waits for the poll period after its operation ends, and a
//! reconcile that waits inline holds one of the few reconcile slots the whole time. Here each
//! such operation gets one watcher task that polls it at Azure's pace (`ArmClient::wait`) and,
//! when it ends, however it ends, asks the object's controller for a reconcile.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::azure::{ArmClient, LroState};

/// An object to reconcile again: namespace (if any) and name.
type Target = (Option<String>, String);

/// The controllers' wake-up channels (one per kind) and the operations being watched.
#[derive(Default)]
pub struct Wakeups {
    channels: Mutex<HashMap<String, UnboundedSender<Target>>>,
    /// Poll URLs of the operations with a watcher.
    watching: Arc<Mutex<HashSet<String>>>,
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

    /// Watches each of `operations` (not already watched) until it ends, then wakes `obj`.
    pub fn after<K>(&self, arm: &Arc<ArmClient>, obj: &K, operations: &[LroState])
    where
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
            let watching = self.watching.clone();
            tokio::spawn(async move {
                // Succeeded or failed, the next pass reads the outcome; the error is not ours.
                let _ = arm.wait(&op).await;
                lock(&watching).remove(&op.poll_url);
                // The controller is gone only when the process is stopping.
                let _ = tx.send(target);
            });
        }
    }

    /// Whether `op` has a watcher (it was running when last polled).
    pub fn is_watching(&self, op: &LroState) -> bool {
        lock(&self.watching).contains(&op.poll_url)
    }
}
