//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! runs the controllers and writes to Azure. The others wait, ready to take over when the
//! holder stops renewing.
//!
//! Expiry is judged as client-go judges it: by how long *this* process has seen the same lease
//! record unchanged, against the record's own `leaseDurationSeconds` — not by comparing the
//! holder's `renewTime` with our clock — so clock skew between replicas cannot make two of them
//! leaders at once.
//!
//! The leader must stop before anyone else may start: every call to the API server is bounded
//! (the kube client has no read timeout; a connection that stops answering would otherwise hang
//! a renewal for ever while the controllers write to Azure from a stale cache), and the holder
//! gives up once a lease duration less a margin has passed since its last renewal began,
//! whether or not a call is still pending.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

use super::{Error, Result};

/// The lease this replica competes for.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The last record seen held by someone else, and since when it has not changed.
    observed: Option<(String, Instant)>,
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Leading,
    /// Someone else holds it.
    Following(String),
    /// Our write lost a race (409): the record changed since we read it. Only a fresh read
    /// tells whether someone else took it.
    Contended,
}

impl LeaseLock {
    /// A lock on the Lease `namespace/name` for the replica `identity`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            observed: None,
        }
    }

    /// How often to renew or retry: a third of the lease, as client-go does.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Acquires, renews or observes the lease once, within a retry period.
    pub async fn attempt(&mut self) -> Result<Attempt> {
        let limit = self.retry_period();
        tokio::time::timeout(limit, self.attempt_unbounded())
            .await
            .unwrap_or(Err(Error::Timeout("a lease call", limit)))
    }

    async fn attempt_unbounded(&mut self) -> Result<Attempt> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == self.identity {
            lease.spec = Some(self.spec(
                spec.lease_transitions.unwrap_or(0),
                spec.acquire_time.clone(),
            ));
            return self.write(
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await,
            );
        }
        let record = format!(
            "{holder}|{:?}|{:?}",
            spec.renew_time, spec.lease_duration_seconds
        );
        let unchanged_for = match &self.observed {
            Some((seen, since)) if *seen == record => since.elapsed(),
            _ => {
                self.observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        };
        if holder.is_empty() || unchanged_for > record_duration(&spec, self.duration) {
            // Free or expired: take over. `replace` carries the resourceVersion we read, so of
            // two replicas taking over at once only one succeeds.
            lease.spec = Some(self.spec(spec.lease_transitions.unwrap_or(0) + 1, None));
            return self.write(
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await,
            );
        }
        Ok(Attempt::Following(holder))
    }

    fn write(&mut self, result: kube::Result<Lease>) -> Result<Attempt> {
        match result {
            Ok(_) => {
                self.observed = None;
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Contended),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&mut self) {
        loop {
            match self.attempt().await {
                Ok(Attempt::Leading) => return,
                Ok(Attempt::Following(holder)) => {
                    tracing::debug!(%holder, lease = %self.name, "waiting for the lease");
                }
                Ok(Attempt::Contended) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "lease attempt failed"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews until the lease is lost — someone else holds it, or no renewal succeeded in time
    /// (after which another replica may already lead). Returns then, at the latest a margin
    /// before a lease duration has passed since the last successful renewal began: the caller
    /// stops its controllers before anyone else can see the lease expired.
    pub async fn keep(&mut self) -> String {
        // Measured from when the last successful renewal was sent: its `renewTime` is no
        // earlier than that, so no other replica's clock for it started before.
        let mut renewed_at = Instant::now();
        let margin = self.retry_period() / 2;
        let mut again_now = false;
        loop {
            let limit = renewed_at + self.duration - margin;
            let next = if again_now {
                Instant::now()
            } else {
                Instant::now() + self.retry_period()
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(next.min(limit))).await;
            if Instant::now() >= limit {
                return "the lease could not be renewed in time".into();
            }
            again_now = false;
            let sent = Instant::now();
            let left = limit.saturating_duration_since(sent);
            match tokio::time::timeout(left, self.attempt()).await {
                Ok(Ok(Attempt::Leading)) => renewed_at = sent,
                Ok(Ok(Attempt::Following(holder))) => return format!("{holder} holds the lease"),
                // Someone wrote the record since we read it: only a fresh read tells whether
                // they took it, so read again at once rather than give up.
                Ok(Ok(Attempt::Contended)) => again_now = true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.name, "lease renewal failed")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, "lease renewal did not answer in time");
                }
            }
        }
    }

    /// Gives the lease up (on shutdown), so a successor need not wait for it to expire.
    pub async fn release(&mut self) {
        let limit = self.retry_period();
        let _ = tokio::time::timeout(limit, self.release_unbounded()).await;
    }

    async fn release_unbounded(&mut self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                let _ = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await;
            }
        }
    }
}

/// How long the holder of `spec` may go without renewing: the record's own
/// `leaseDurationSeconds` (the holder's setting, which may differ from ours), else ours.
fn record_duration(spec: &LeaseSpec, ours: Duration) -> Duration {
    spec.lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(ours, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_the_record_s_duration_not_ours() {
        let ours = Duration::from_secs(15);
        let spec = |seconds| LeaseSpec {
            lease_duration_seconds: seconds,
            ..LeaseSpec::default()
        };
        assert_eq!(
            record_duration(&spec(Some(60)), ours),
            Duration::from_secs(60)
        );
        assert_eq!(record_duration(&spec(Some(0)), ours), ours);
        assert_eq!(record_duration(&spec(None), ours), ours);
    }
}
