//! `stamp-operator run`: wire the ARM engine, the Kubernetes client and the controllers.

use std::sync::Arc;
use std::time::Duration;

use super::{CliError, CredentialKind, RunArgs};
use crate::azure::{ArmClient, ArmConfig, ArmMetrics, CredentialConfig, TokenSource};
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
    let subscriber = tracing_subscriber::fmt().with_env_filter(
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
        let settings = Settings {
            resync: Duration::from_secs(args.resync_seconds),
            poll: Duration::from_secs(args.poll_seconds),
            inline_wait: Duration::from_secs(args.inline_wait_seconds),
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
        crate::controller::run(Arc::new(Context {
            kube,
            recorder,
            arm: Arc::new(arm),
            settings,
            metrics: reconcile_metrics,
        }))
        .await;
        Ok(())
    })
}
