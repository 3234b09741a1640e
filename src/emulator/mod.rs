//! An Azure Resource Manager emulator: a real HTTP server speaking ARM's paths, status codes,
//! headers, long-running operations, throttling, conflicts and validation rules for the resource
//! types stamp-operator touches. Tests start it on an ephemeral loopback port; `stamp-operator
//! emulator --listen` runs it standalone.
//!
//! It shares no code with `crate::azure` or `crate::plan`: a bug in the operator's ARM client
//! cannot hide behind the same bug here.

mod error;
mod faults;
pub mod fixtures;
mod http;
mod latency;
mod network;
mod path;
pub mod spec_schema;
mod state;
mod throttle;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

pub use error::ArmError;
pub use faults::{FaultAction, FaultRule};
pub use latency::{observable_put_seconds, realistic_put_seconds, LatencyProfile};
pub use state::{EmulatorConfig, RequestRecord, RetryAfter, Stats, World};
pub use throttle::{BucketLimit, ThrottleLimits};

/// The emulator's state, shared by connections.
pub type Shared = Arc<Mutex<state::World>>;

/// A running emulator. Dropping it stops the server.
pub struct RunningEmulator {
    addr: SocketAddr,
    world: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// Starts an emulator on `127.0.0.1` with an ephemeral port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(RunningEmulator::on(listener, config))
    }

    /// Serves on an already bound listener.
    pub fn on(listener: TcpListener, config: EmulatorConfig) -> RunningEmulator {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let world: Shared = Arc::new(Mutex::new(state::World::new(config)));
        let server = tokio::spawn(serve(listener, world.clone()));
        RunningEmulator {
            addr,
            world,
            server,
        }
    }

    /// Serves until the process ends.
    pub async fn wait(&self) {
        std::future::pending::<()>().await;
    }

    /// Base URL (`http://127.0.0.1:PORT`), the ARM endpoint for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, state::World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seeds what exists before the operator runs for `deploy/examples` (see `fixtures`); returns
    /// every id then stored (children Azure made along, such as subnets, included), lower case.
    pub async fn seed_examples(&self) -> Result<std::collections::BTreeSet<String>, String> {
        let token = self
            .world()
            .config
            .token
            .clone()
            .unwrap_or_else(|| "seed".into());
        fixtures::seed_examples(&self.url(), &token).await?;
        Ok(self
            .inventory()
            .into_iter()
            .map(|id| id.to_ascii_lowercase())
            .collect())
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        self.world().stats.clone()
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<state::RequestRecord> {
        self.world().log.clone()
    }

    /// Every operation started so far: its id and the (lower-case) id of its resource.
    pub fn operations(&self) -> Vec<(String, String)> {
        self.world()
            .operations
            .iter()
            .map(|(id, op)| (id.clone(), op.resource_key.clone()))
            .collect()
    }

    /// Ids of every live resource.
    pub fn inventory(&self) -> Vec<String> {
        self.world()
            .resources
            .values()
            .map(|r| r.id.clone())
            .collect()
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        self.world().faults.add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// Changes a stored resource behind the operator's back (drift), as a write of the whole
    /// resource would: `change` sees the body a GET shows the arrays of (an NSG's rules, a route
    /// table's routes). Returns false if absent.
    pub fn mutate(&self, id: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut world = self.world();
        let key = id.to_ascii_lowercase();
        let Some(r) = world.resources.get(&key) else {
            return false;
        };
        let (real_id, resource_type) = (r.id.clone(), r.resource_type.clone());
        let mut body = network::with_composed(&world, r);
        change(&mut body);
        network::split_composed(&mut world, &real_id, &resource_type, &mut body);
        let Some(r) = world.resources.get_mut(&key) else {
            return false;
        };
        r.body = body;
        r.etag = state::World::new_etag();
        r.changed_time = state::now_rfc3339();
        true
    }

    /// Removes a resource (and its children) behind the operator's back.
    pub fn remove(&self, id: &str) -> bool {
        !self
            .world()
            .remove_tree(&id.to_ascii_lowercase())
            .is_empty()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, world: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let world = world.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::handle(world.clone(), req));
            // An error here is a dropped connection, injected or by the client; nothing to do.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
