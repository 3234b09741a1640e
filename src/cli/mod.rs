//! Command-line interface: argument parsing and the offline subcommands.

mod plan_cmd;
mod run_cmd;

pub use plan_cmd::load as load_manifests;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// stamp-operator: network-restricted, mission-critical Azure stamps from Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "stamp-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: reconcile GlobalPlanes, Stamps and PrivateEndpointSets against Azure.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as multi-document YAML, or write one file each.
    Crd {
        /// Write `<crd name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Run the Azure Resource Manager emulator (for tests, the demo and benchmarks).
    Emulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Scale of the realistic latency profile (1.0 = Azure's real durations, 0 = instant).
        #[arg(long, default_value_t = 0.0, value_parser = seconds)]
        latency_factor: f64,
        /// Accept only `Authorization: Bearer <token>` (any bearer token when omitted).
        #[arg(long, env = "EMULATOR_TOKEN")]
        token: Option<String>,
        /// Seed what exists before the operator runs for `deploy/examples` (PaaS services, AKS's
        /// load balancers and Private Link Service).
        #[arg(long)]
        seed_examples: bool,
        /// Entries per page of every list; more follow behind `nextLink`.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
        page_size: u16,
        /// Answer the time an operation has left in `Retry-After`, kinder than Azure's constant
        /// (for comparing the two; the default is Azure's).
        #[arg(long)]
        retry_after_time_left: bool,
        /// Keep a private endpoint's `customDnsConfigs` once its zone group is written (by
        /// default they are emptied, as Azure may do).
        #[arg(long)]
        keep_custom_dns_configs: bool,
    },
    /// Derive the emulator's compact request schemas from Azure's REST API specs (prints JSON).
    DeriveEmulatorSchemas {
        /// The `azure-specs` folder (official OpenAPI files, see its SOURCES.md).
        #[arg(long)]
        specs: PathBuf,
    },
    /// Plan manifests offline: the address plan and the ordered Azure resources, no cluster, no Azure.
    Plan {
        /// Manifest files (multi-document YAML); `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Instead of the resources, evaluate the flows each stamp and operations network needs
        /// and forbids against the planned NSGs, routes and firewall rules; exits non-zero when
        /// any flow does not do what it should.
        #[arg(long)]
        flows: bool,
    },
}

/// How the operator authenticates to ARM.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// Entra workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE).
    WorkloadIdentity,
    /// Managed identity (user-assigned with --client-id).
    ManagedIdentity,
    /// Service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
    ClientSecret,
    /// The Azure CLI's signed-in user.
    AzureCli,
    /// A bearer token file, re-read as it rotates.
    TokenFile,
    /// A fixed bearer token (the emulator).
    Static,
}

/// Arguments of `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// ARM endpoint (a sovereign cloud's, or the emulator's).
    #[arg(
        long,
        env = "ARM_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    pub arm_endpoint: String,
    /// Token scope for ARM.
    #[arg(
        long,
        env = "ARM_SCOPE",
        default_value = "https://management.azure.com/.default"
    )]
    pub arm_scope: String,
    /// Credential.
    #[arg(long, env = "ARM_CREDENTIAL", value_enum, default_value_t = CredentialKind::WorkloadIdentity)]
    pub credential: CredentialKind,
    /// Client id of a user-assigned managed identity.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Tenant of a service principal.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Secret of a service principal.
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Token file (credential token-file) or token (credential static).
    #[arg(long, env = "ARM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds between drift resyncs of a converged object.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between looks while something provisions.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub poll_seconds: f64,
    /// Seconds one reconcile waits for an operation before persisting it (and handing it to a
    /// watcher that reconciles the object again when it ends): short, so reconciles do not hold
    /// their slots while Azure works.
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    pub inline_wait_seconds: f64,
    /// Multiply the refill rates of ARM's request budget the operator paces itself by (only for an
    /// emulator whose time runs faster than Azure's, as in `make bench`).
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub arm_budget_scale: f64,
    /// Seconds between polls of one operation when Azure gives no Retry-After (one it gives is
    /// honoured).
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    pub min_poll_seconds: f64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Seconds a full check of every resource is trusted while the resource-group listing shows
    /// no change (resyncs in between cost one listing per object).
    #[arg(long, default_value_t = 3600)]
    pub full_check_seconds: u64,
    /// Seconds between status writes of one object when only progress detail moved (operations
    /// in flight, component conditions, outputs appearing one by one); what tools act on —
    /// phase, Ready, Reconciling, Stalled — is written at once.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub progress_interval_seconds: f64,
    /// Reconciles running at once, of all kinds together; when more wait, the object with the
    /// longest chain of Azure work ahead of it goes first.
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_reconciles: u16,
    /// Seconds a deleted stamp's Front Door origin stays disabled (draining) before removal.
    #[arg(long, default_value_t = 30)]
    pub drain_seconds: u64,
    /// Log as JSON.
    #[arg(long)]
    pub log_json: bool,
    /// Run the controllers only while holding this Lease (`namespace/name`), so that of several
    /// replicas exactly one writes. Off when empty.
    #[arg(long, env = "LEADER_ELECTION_LEASE", default_value = "")]
    pub leader_election_lease: String,
    /// Seconds a Lease stays valid without renewal: how long a failover may take.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
}

/// Output formats of `plan`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people.
    Table,
    /// For machines.
    Json,
}

/// Errors of the CLI.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest was refused.
    #[error("{path}: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::api::manifest::ManifestError,
    },
    /// The planner refused objects.
    #[error("{0}")]
    Plan(String),
    /// Output failed.
    #[error("cannot write output: {0}")]
    Output(String),
}

/// Runs an offline subcommand, writing to standard output.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd { out_dir: None } => {
            let yaml = crate::api::crds_yaml().map_err(|e| CliError::Output(e.to_string()))?;
            print!("{yaml}");
            Ok(())
        }
        Command::Crd { out_dir: Some(dir) } => {
            for (file, yaml) in
                crate::api::crd_documents().map_err(|e| CliError::Output(e.to_string()))?
            {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
            }
            Ok(())
        }
        Command::Plan {
            files,
            output,
            flows,
        } => plan_cmd::run(&files, output, flows),
        Command::Run(args) => run_cmd::run(*args),
        Command::DeriveEmulatorSchemas { specs } => {
            let schemas = crate::emulator::spec_schema::derive(&specs).map_err(CliError::Output)?;
            let text =
                serde_json::to_string(&schemas).map_err(|e| CliError::Output(e.to_string()))?;
            println!("{text}");
            Ok(())
        }
        Command::Emulator {
            listen,
            latency_factor,
            token,
            seed_examples,
            page_size,
            retry_after_time_left,
            keep_custom_dns_configs,
        } => {
            let retry_after = if retry_after_time_left {
                crate::emulator::RetryAfter::TimeLeft
            } else {
                crate::emulator::RetryAfter::Azure
            };
            let config = crate::emulator::EmulatorConfig {
                latency: crate::emulator::LatencyProfile::realistic(latency_factor),
                token,
                page_size: usize::from(page_size),
                retry_after,
                keep_custom_dns_configs,
                ..Default::default()
            };
            run_emulator(listen, config, seed_examples)
        }
    }
}

fn run_emulator(
    listen: std::net::SocketAddr,
    config: crate::emulator::EmulatorConfig,
    seed_examples: bool,
) -> Result<(), CliError> {
    let latency_factor = config.latency.factor;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError::Output(e.to_string()))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CliError::Output(format!("cannot listen on {listen}: {e}")))?;
        let emulator = crate::emulator::RunningEmulator::on(listener, config);
        if seed_examples {
            let seeded = emulator.seed_examples().await.map_err(CliError::Output)?;
            eprintln!("seeded {} resources for deploy/examples", seeded.len());
        }
        eprintln!("ARM emulator listening on http://{listen} (latency factor {latency_factor})");
        emulator.wait().await;
        Ok(())
    })
}

/// A number of seconds (or a scale) from the command line: finite, not negative, at most a
/// million (so that it always makes a `Duration`: `Duration::from_secs_f64` panics on what is
/// not).
fn seconds(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|e| format!("`{raw}` is not a number: {e}"))?;
    if value.is_finite() && (0.0..=1e6).contains(&value) {
        Ok(value)
    } else {
        Err(format!("`{raw}` must be a finite number from 0 to 1000000"))
    }
}

/// A scale that must be above zero (and finite, at most a million).
fn positive_factor(raw: &str) -> Result<f64, String> {
    match seconds(raw)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("`{raw}` must be above 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_on_the_command_line_are_finite_or_refused() {
        let run = |flag: &str, value: &str| {
            Cli::try_parse_from(["stamp-operator", "run", flag, value]).map(|_| ())
        };
        assert!(run("--poll-seconds", "2.5").is_ok());
        for bad in ["inf", "NaN", "-1", "1e300"] {
            assert!(run("--poll-seconds", bad).is_err(), "--poll-seconds {bad}");
            assert!(run("--inline-wait-seconds", bad).is_err());
            assert!(run("--min-poll-seconds", bad).is_err());
            assert!(run("--progress-interval-seconds", bad).is_err());
        }
        assert!(run("--arm-budget-scale", "0").is_err());
        let emulator = |value: &str| {
            Cli::try_parse_from(["stamp-operator", "emulator", "--latency-factor", value])
                .map(|_| ())
        };
        assert!(emulator("0.01").is_ok());
        assert!(emulator("inf").is_err());
    }
}
