//! One watch per kind. An object that reads objects of another kind — a stamp its sets' specs, a
//! set its stamp, a GlobalPlane its stamps' origins — follows them through a channel fed by
//! that kind's watch, and is woken only when the part it reads changes. A second watch of the
//! same kind would cost the API server a copy of every event (a converging stamp writes its
//! status every few seconds), and waking a GlobalPlane on every status write of its fifty
//! stamps would only read its groups again to find nothing new.

use std::collections::HashMap;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Which objects of kind `T` read an object of kind `K`.
type Concerns<K, T> = Box<dyn Fn(&K) -> Vec<ObjectRef<T>> + Send>;

/// Wakes objects of kind `T` when what they read of an object of kind `K` changes.
pub struct Follower<K: Resource<DynamicType = ()>, T: Resource<DynamicType = ()>> {
    tx: UnboundedSender<ObjectRef<T>>,
    /// Per object seen: the hash of what the followers read, and whom it concerned.
    seen: HashMap<ObjectRef<K>, (u64, Vec<ObjectRef<T>>)>,
    read: fn(&K) -> u64,
    concerns: Concerns<K, T>,
}

/// A follower of kind `K` for objects of kind `T`, and the stream of `T`s to reconcile (for
/// `Controller::reconcile_on`). `read`: a hash of what a `T` reads of a `K`, covering which
/// `T`s those are; `concerns`: which `T`s read it (asked only when the hash moved).
pub fn follower<K, T>(
    read: fn(&K) -> u64,
    concerns: impl Fn(&K) -> Vec<ObjectRef<T>> + Send + 'static,
) -> (
    Follower<K, T>,
    impl Stream<Item = ObjectRef<T>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>,
    T: Resource<DynamicType = ()> + 'static,
{
    let (tx, rx) = unbounded_channel();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|target| (target, rx))
    });
    let follower = Follower {
        tx,
        seen: HashMap::new(),
        read,
        concerns: Box::new(concerns),
    };
    (follower, stream.boxed())
}

impl<K, T> Follower<K, T>
where
    K: Resource<DynamicType = ()>,
    T: Resource<DynamicType = ()>,
{
    /// Takes one event of the watch of `K`.
    pub fn observe(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                self.changed(obj, false);
            }
            watcher::Event::Delete(obj) => self.changed(obj, true),
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// Wakes whom `obj` concerns now and concerned before, when what they read moved (or it
    /// is gone). A re-listed, unchanged object wakes no one. (What is read covers whom it
    /// concerns: a set moving to another stamp changes its spec.)
    fn changed(&mut self, obj: &K, gone: bool) {
        let key = ObjectRef::from_obj(obj);
        let hash = (self.read)(obj);
        if !gone && self.seen.get(&key).is_some_and(|(h, _)| *h == hash) {
            return;
        }
        let now = (self.concerns)(obj);
        let before = if gone {
            self.seen.remove(&key)
        } else {
            self.seen.insert(key, (hash, now.clone()))
        };
        let mut wake = now;
        for target in before.map(|(_, t)| t).unwrap_or_default() {
            if !wake.contains(&target) {
                wake.push(target);
            }
        }
        for target in wake {
            // The controller is gone only when the process is stopping.
            let _ = self.tx.send(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use k8s_openapi::api::core::v1::ConfigMap;

    /// A config map `name` whose `read` key its follower reads and whose `for` key names it.
    fn map(name: &str, read: &str, unread: &str, follower: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "namespace": "ns" },
            "data": { "read": read, "unread": unread, "for": follower },
        }))
        .expect("a config map")
    }

    fn woken(stream: &mut (impl Stream<Item = ObjectRef<ConfigMap>> + Unpin)) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(target)) = stream.next().now_or_never() {
            out.push(target.name);
        }
        out
    }

    #[test]
    fn only_a_change_of_what_is_read_wakes_and_a_move_or_deletion_wakes_both_sides() {
        let (mut follower, stream) = follower::<ConfigMap, ConfigMap>(
            // What is read covers whom it concerns.
            |m| {
                let data = m.data.as_ref().unwrap();
                crate::controller::converge::stable_hash(&format!(
                    "{}{}",
                    data["read"], data["for"]
                ))
            },
            |m| {
                let target = &m.data.as_ref().unwrap()["for"];
                vec![ObjectRef::new(target).within("ns")]
            },
        );
        let mut stream = Box::pin(stream);
        follower.observe(&watcher::Event::InitApply(map("a", "1", "x", "f")));
        assert_eq!(woken(&mut stream), ["f"], "first sight wakes");
        follower.observe(&watcher::Event::Apply(map("a", "1", "y", "f")));
        assert!(
            woken(&mut stream).is_empty(),
            "an unread change wakes no one"
        );
        follower.observe(&watcher::Event::InitApply(map("a", "1", "y", "f")));
        assert!(woken(&mut stream).is_empty(), "a re-list wakes no one");
        follower.observe(&watcher::Event::Apply(map("a", "2", "y", "f")));
        assert_eq!(woken(&mut stream), ["f"]);
        follower.observe(&watcher::Event::Apply(map("a", "2", "y", "g")));
        assert_eq!(
            woken(&mut stream),
            ["g", "f"],
            "the new and the old follower"
        );
        follower.observe(&watcher::Event::Delete(map("a", "2", "y", "g")));
        assert_eq!(woken(&mut stream), ["g"]);
    }
}
