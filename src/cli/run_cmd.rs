//! `stamp-operator run`: wire the ARM engine, the Kubernetes client and the controllers.

use std::sync::Arc;
use std::time::Duration;

use super::{CliError, CredentialKind, RunArgs};
use crate::azure::{ArmClient, ArmConfig, ArmMetrics, CredentialConfig, TokenSource};
use crate::controller::leader::LeaseLock;
use crate::controller::{Context, Settings};

fn credential(args: &RunArgs) -> Result<CredentialConfig, CliError> {
    let need = |v: &Option<String>, what: &str| {
        v.clone().ok_or_else(|| {
            CliError::Output(format!("credential {:?} needs {what}", args.credential))
        })
    };
    Ok(match args.credential {
        CredentialKind::WorkloadIdentity => CredentialConfig::WorkloadIdentity,
        CredentialKind::ManagedIdentity => CredentialConfig::ManagedIdentity {
            client_id: args.client_id.clone(),
        },
        CredentialKind::ClientSecret => CredentialConfig::ClientSecret {
            tenant_id: need(&args.tenant_id, "--tenant-id")?,
            client_id: need(&args.client_id, "--client-id")?,
            secret: need(&args.client_secret, "--client-secret")?,
        },
        CredentialKind::AzureCli => CredentialConfig::AzureCli,
        CredentialKind::TokenFile => {
            CredentialConfig::TokenFile(need(&args.token, "--token (a file path)")?.into())
        }
        CredentialKind::Static => CredentialConfig::Static(need(&args.token, "--token")?),
    })
}

pub(super) fn run(args: RunArgs) -> Result<(), CliError> {
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError::Output(e.to_string()))?;
    runtime.block_on(async move {
        let kube = kube::Client::try_default()
            .await
            .map_err(|e| CliError::Output(format!("kubernetes: {e}")))?;
        let mut config = ArmConfig::for_endpoint(&args.arm_endpoint, &args.arm_scope);
        config.min_poll_interval = Duration::from_secs_f64(args.min_poll_seconds.max(0.0));
        config.budget = config
            .budget
            .refill_scaled(args.arm_budget_scale.max(0.001));
        if let Ok(pod) = std::env::var("POD_NAME") {
            config.user_agent = format!("{} ({pod})", config.user_agent);
        }
        let cred = credential(&args)?
            .build()
            .map_err(|e| CliError::Output(e.to_string()))?;
        let metrics = ArmMetrics::default();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let reconcile_metrics = crate::controller::metrics::ReconcileMetrics::default();
        reconcile_metrics.register(&mut registry);
        let arm = ArmClient::new(
            config,
            TokenSource::new(cred, args.arm_scope.clone()),
            metrics,
        )
        .map_err(|e| CliError::Output(e.to_string()))?;
        let concurrency = args.max_concurrent_reconciles.max(1);
        let settings = Settings {
            resync: Duration::from_secs(args.resync_seconds),
            poll: Duration::from_secs_f64(args.poll_seconds.max(0.01)),
            inline_wait: Duration::from_secs_f64(args.inline_wait_seconds.max(0.0)),
            full_check: Duration::from_secs(args.full_check_seconds),
            drain: Duration::from_secs(args.drain_seconds),
            concurrency,
            progress_interval: Duration::from_secs_f64(args.progress_interval_seconds.max(0.0)),
        };
        let listener = tokio::net::TcpListener::bind(args.metrics_addr)
            .await
            .map_err(|e| CliError::Output(format!("{}: {e}", args.metrics_addr)))?;
        tokio::spawn(crate::controller::serve::serve(
            listener,
            Arc::new(registry),
        ));
        tracing::info!(endpoint = %args.arm_endpoint, "stamp-operator running");
        let recorder = crate::controller::recorder(kube.clone());
        // A pass waiting five poll periods for its slot goes first: long enough that urgency
        // orders the passes of a burst of new stamps, short enough that a GlobalPlane whose
        // next step is short is not kept from it by stamps polling for that very step.
        let slots =
            crate::controller::slots::PassSlots::new(usize::from(concurrency), settings.poll * 5);
        let ctx = Arc::new(Context {
            kube: kube.clone(),
            recorder,
            arm: Arc::new(arm),
            settings,
            metrics: reconcile_metrics,
            backoff: Default::default(),
            known: Default::default(),
            status_written: Default::default(),
            built: Default::default(),
            group_owners: Default::default(),
            request_messages: Default::default(),
            caches: Default::default(),
            wakeups: Default::default(),
            slots,
        });
        if args.leader_election_lease.is_empty() {
            tokio::select! {
                () = crate::controller::run(ctx) => {}
                () = shutdown_signal() => tracing::info!("stopping"),
            }
            return Ok(());
        }
        lead(kube, &args, ctx).await
    })
}

/// Runs the controllers while this replica holds the Lease; gives it up on SIGTERM and fails
/// (so the pod restarts and competes again) if it is lost.
async fn lead(kube: kube::Client, args: &RunArgs, ctx: Arc<Context>) -> Result<(), CliError> {
    let (namespace, name) = match args.leader_election_lease.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (
            std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into()),
            args.leader_election_lease.clone(),
        ),
    };
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("stamp-operator-{}", uuid::Uuid::new_v4()));
    let mut lock = LeaseLock::new(
        kube,
        &namespace,
        &name,
        &identity,
        Duration::from_secs(args.lease_seconds.max(3)),
    );
    tracing::info!(%identity, lease = %format!("{namespace}/{name}"), "waiting to lead");
    tokio::select! {
        () = lock.acquire() => {}
        () = shutdown_signal() => return Ok(()),
    }
    tracing::info!(%identity, "leading: controllers start");
    enum End {
        Stopped,
        Lost(String),
        Signal,
    }
    let end = tokio::select! {
        () = crate::controller::run(ctx) => End::Stopped,
        lost = lock.keep() => End::Lost(lost),
        () = shutdown_signal() => End::Signal,
    };
    match end {
        End::Lost(why) => Err(CliError::Output(format!("lost leadership: {why}"))),
        End::Stopped | End::Signal => {
            lock.release().await;
            tracing::info!(%identity, "stopped leading");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
