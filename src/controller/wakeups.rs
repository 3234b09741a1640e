//! Reconciling an object again the moment an Azure operation it started ends.
//!
//! A pass hands back the operations still running (they are persisted in status). Without this,
//! the next wave of the object waits for the poll period after its operation ends, and a
//! reconcile that waits inline holds one of the few reconcile slots the whole time. Here each
//! such operation gets one watcher task that, when it ends, however it ends, asks the object's
//! controller for a reconcile. What it saw is kept for that reconcile: an operation seen to
//! succeed is not polled again.
//!
//! A watcher polls at Azure's pace (`ArmClient::wait`), except the first time an operation on
//! a resource its group's listing shows comes due: the listing the woken pass reads anyway
//! tells whether it ended (`Known::ended_as_listed`), so the watcher only sleeps until then.
//! Several such operations ending together cost that one listing, not a poll each; at a
//! thousand stamps, polls were a third of the reads ARM allows. One that the pass still finds
//! running is polled from then on: its Retry-After did not tell its end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::converge::Watched;
use crate::azure::{ArmClient, LroKind, LroState};

/// How long the news of an ended watch is remembered for a reconcile that never comes (its
/// object was deleted meanwhile).
const NEWS_KEPT: Duration = Duration::from_secs(3600);

/// How often the forgetting of such news is done: a scan of every kept entry at each operation's
/// end cost a thousand stamps' operator more CPU than the news itself.
const NEWS_PRUNED_EVERY: Duration = Duration::from_secs(60);

/// An object to reconcile again: namespace (if any) and name.
type Target = (Option<String>, String);

/// The controllers' wake-up channels (one per kind) and the operations being watched.
#[derive(Default)]
pub struct Wakeups {
    channels: Mutex<HashMap<String, UnboundedSender<Target>>>,
    /// Poll URLs of the operations with a watcher.
    watching: Arc<Mutex<HashSet<String>>>,
    /// What the watchers found at the end of their watch, until a pass takes the news.
    news: Arc<Mutex<News>>,
}

/// How a watch ended, for the pass it wakes.
#[derive(Debug, Clone, Copy)]
enum Ended {
    /// A poll saw it succeed, writing the body with this hash.
    Succeeded(u64),
    /// It came due unpolled (the hash of its body, when this process started it).
    Due(Option<u64>),
}

/// Poll URLs of the operations whose watch ended with news a poll would otherwise tell, with
/// when.
#[derive(Default)]
struct News {
    by_poll_url: HashMap<String, (Instant, Ended)>,
    last_pruned: Option<Instant>,
}

impl News {
    fn insert(&mut self, poll_url: String, ended: Ended) {
        let now = Instant::now();
        if self
            .last_pruned
            .is_none_or(|at| now.duration_since(at) >= NEWS_PRUNED_EVERY)
        {
            self.by_poll_url
                .retain(|_, (at, _)| now.duration_since(*at) < NEWS_KEPT);
            self.last_pruned = Some(now);
        }
        self.by_poll_url.insert(poll_url, (now, ended));
    }

    fn take(&mut self, poll_url: &str) -> Option<Ended> {
        self.by_poll_url.remove(poll_url).map(|(_, ended)| ended)
    }
}

/// Whether a group listing shows `resource_id` (see `ArmId::listed_in_group`).
fn listed(resource_id: &str) -> bool {
    crate::plan::ArmId::parse("operation", resource_id).is_ok_and(|id| id.listed_in_group())
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
    /// URL); only those are told as succeeded, the rest are left for a poll to tell. `polled`:
    /// the operations the pass polled and found running (a listing did not show their end, or
    /// nothing watched them): they are polled from now on, not left to a listing again.
    pub fn after<K>(
        &self,
        arm: &Arc<ArmClient>,
        obj: &K,
        operations: &[LroState],
        started: &BTreeMap<String, u64>,
        polled: &BTreeSet<String>,
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
            let by_listing = op.kind == LroKind::Put
                && listed(&op.resource_id)
                && !polled.contains(&op.poll_url);
            let (watching, news) = (self.watching.clone(), self.news.clone());
            tokio::spawn(async move {
                if by_listing {
                    arm.until_due(&op).await;
                    lock(&news).insert(op.poll_url.clone(), Ended::Due(written));
                } else if let (Ok(()), Some(hash)) = (arm.wait(&op).await, written) {
                    // A failure is the next pass's to read (it writes the resource again); the
                    // error is not this task's to report.
                    lock(&news).insert(op.poll_url.clone(), Ended::Succeeded(hash));
                }
                lock(&watching).remove(&op.poll_url);
                // The controller is gone only when the process is stopping.
                let _ = tx.send(target);
            });
        }
    }

    /// What the watchers know of `op`. How a watch ended is told once: the pass that hears it
    /// records the resource as written.
    pub fn watched(&self, op: &LroState) -> Watched {
        if lock(&self.watching).contains(&op.poll_url) {
            return Watched::Running;
        }
        match lock(&self.news).take(&op.poll_url) {
            Some(Ended::Succeeded(hash)) => Watched::Succeeded(hash),
            Some(Ended::Due(hash)) => Watched::Due(hash),
            None => Watched::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::{ArmConfig, ArmMetrics, CredentialConfig, PutOutcome, TokenSource};
    use crate::emulator::{EmulatorConfig, LatencyProfile, RunningEmulator};
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    const GROUP: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg";

    /// Starts writing an NSG (4 s in Azure, 40 ms here) and hands back its operation.
    async fn nsg_written(arm: &ArmClient, name: &str) -> LroState {
        let id = format!("{GROUP}/providers/Microsoft.Network/networkSecurityGroups/{name}");
        let body = json!({ "location": "westeurope" });
        match arm.put(&id, "2024-05-01", &body, None).await.unwrap() {
            PutOutcome::Started(op) => op,
            PutOutcome::Done(_) => panic!("an NSG is written asynchronously"),
        }
    }

    #[tokio::test]
    async fn a_listed_operation_is_left_to_the_listing_unless_a_pass_found_it_running_when_due() {
        let emulator = RunningEmulator::start(EmulatorConfig {
            latency: LatencyProfile::realistic(0.01),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut config = ArmConfig::for_endpoint(&emulator.url(), "scope");
        config.min_poll_interval = Duration::from_millis(5);
        let tokens = TokenSource::new(
            CredentialConfig::Static("t".into()).build().unwrap(),
            "scope",
        );
        let arm = Arc::new(ArmClient::new(config, tokens, ArmMetrics::default()).unwrap());
        let group = json!({ "location": "westeurope" });
        arm.put(GROUP, "2024-03-01", &group, None).await.unwrap();
        let (left, polled) = (nsg_written(&arm, "a").await, nsg_written(&arm, "b").await);

        let wakeups = Wakeups::default();
        let mut woken = Box::pin(wakeups.stream::<ConfigMap>());
        let mut obj = ConfigMap::default();
        obj.metadata.name = Some("stamp".into());
        obj.metadata.namespace = Some("team".into());
        let started = [(left.poll_url.clone(), 1), (polled.poll_url.clone(), 2)].into();
        let before = emulator.requests().len();
        wakeups.after(
            &arm,
            &obj,
            &[left.clone(), polled.clone()],
            &started,
            &[polled.poll_url.clone()].into(),
        );
        for _ in 0..2 {
            let object = woken.next().await.unwrap();
            assert_eq!(object.name, "stamp");
        }
        assert_eq!(wakeups.watched(&left), Watched::Due(Some(1)));
        assert_eq!(wakeups.watched(&polled), Watched::Succeeded(2));
        assert_eq!(wakeups.watched(&left), Watched::Unknown, "told once");
        let polls_of = |op: &LroState| {
            emulator.requests()[before..]
                .iter()
                .filter(|r| op.poll_url.contains(&r.path))
                .count()
        };
        assert_eq!(polls_of(&left), 0, "the listing tells, not a poll");
        assert!(polls_of(&polled) >= 1);
    }
}
