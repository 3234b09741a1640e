//! Credentials for ARM: Entra ID through `azure_identity` (workload identity, managed identity,
//! client secret, Azure CLI), a token file re-read as it rotates, or a static token for the
//! emulator — all behind one `TokenCredential`, with tokens cached and refreshed before expiry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration as TimeDuration, OffsetDateTime};
use tokio::sync::Mutex;

use super::error::AzureError;

/// How the operator authenticates to ARM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialConfig {
    /// Entra workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
    /// set by the workload-identity webhook). The projected token file is re-read as it rotates.
    WorkloadIdentity,
    /// Managed identity, system-assigned or the user-assigned one with this client id.
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// A service principal with a client secret.
    ClientSecret {
        /// Tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret.
        secret: String,
    },
    /// The signed-in Azure CLI user, for local use.
    AzureCli,
    /// A bearer token read from a file on every refresh (the emulator; or any rotating token).
    TokenFile(PathBuf),
    /// A fixed bearer token (the emulator).
    Static(String),
}

impl CredentialConfig {
    /// Builds the credential.
    pub fn build(&self) -> Result<Arc<dyn TokenCredential>, AzureError> {
        let err = |e: azure_core::Error| AzureError::Credential(e.to_string());
        Ok(match self {
            CredentialConfig::WorkloadIdentity => {
                azure_identity::WorkloadIdentityCredential::new(None).map_err(err)?
            }
            CredentialConfig::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    ..Default::default()
                };
                azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(err)?
            }
            CredentialConfig::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => azure_identity::ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.clone()),
                None,
            )
            .map_err(err)?,
            CredentialConfig::AzureCli => {
                azure_identity::AzureCliCredential::new(None).map_err(err)?
            }
            CredentialConfig::TokenFile(path) => {
                Arc::new(TokenFileCredential { path: path.clone() })
            }
            CredentialConfig::Static(token) => Arc::new(StaticCredential(token.clone())),
        })
    }
}

/// A fixed token, valid for a day at a time.
#[derive(Debug)]
struct StaticCredential(String);

#[async_trait::async_trait]
impl TokenCredential for StaticCredential {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            Secret::new(self.0.clone()),
            OffsetDateTime::now_utc() + TimeDuration::hours(24),
        ))
    }
}

/// A token read from a file; it is considered valid for five minutes, so a rotated file is
/// picked up within one refresh.
#[derive(Debug)]
struct TokenFileCredential {
    path: PathBuf,
}

#[async_trait::async_trait]
impl TokenCredential for TokenFileCredential {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("{}: {e}", self.path.display()),
            )
        })?;
        Ok(AccessToken::new(
            Secret::new(token.trim().to_string()),
            OffsetDateTime::now_utc() + TimeDuration::minutes(5),
        ))
    }
}

/// Caches a token per scope and refreshes it `margin` before it expires, so a long-running
/// operator never sends an expired token and never asks Entra ID on every request.
pub struct TokenSource {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    margin: TimeDuration,
    cached: Mutex<Option<AccessToken>>,
}

impl TokenSource {
    /// A source for `scope` (`https://management.azure.com/.default`).
    pub fn new(credential: Arc<dyn TokenCredential>, scope: impl Into<String>) -> TokenSource {
        TokenSource {
            credential,
            scope: scope.into(),
            margin: TimeDuration::minutes(2),
            cached: Mutex::new(None),
        }
    }

    /// A source refreshing `margin` before expiry (tests use a large margin to force refreshes).
    pub fn with_margin(mut self, margin: std::time::Duration) -> TokenSource {
        self.margin = TimeDuration::try_from(margin).unwrap_or(TimeDuration::minutes(2));
        self
    }

    /// A valid token.
    pub async fn token(&self) -> Result<String, AzureError> {
        let mut cached = self.cached.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|t| t.expires_on - self.margin > OffsetDateTime::now_utc());
        if !fresh {
            let token = self
                .credential
                .get_token(&[self.scope.as_str()], None)
                .await
                .map_err(|e| AzureError::Credential(e.to_string()))?;
            *cached = Some(token);
        }
        Ok(cached
            .as_ref()
            .map(|t| t.token.secret().to_string())
            .unwrap_or_default())
    }

    /// Forgets the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// Seconds since the epoch, for persisted operation state.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
