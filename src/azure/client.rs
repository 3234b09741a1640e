//! The ARM client: one connection-reusing HTTP client, a bearer token that is refreshed before it
//! expires, `x-ms-client-request-id` on every request, bounded concurrency, the throttle budget,
//! bounded retries of what is retryable, metrics — and GET/PUT/PATCH/DELETE/list, operation
//! polling and diff-before-PUT on top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::budget::{BudgetLimits, RequestClass, ThrottleBudget};
use super::credential::{unix_now, TokenSource};
use super::diff::first_difference;
use super::error::{classify, ArmError, AzureError, ErrorClass};
use super::lro::{LroKind, LroState, LroStatus, PollStyle};
use super::metrics::{ArmMetrics, ClassLabels, RequestLabels};

/// Settings of the ARM client.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    /// ARM endpoint (`https://management.azure.com`, a sovereign cloud's, or the emulator's).
    pub endpoint: String,
    /// Token scope (`https://management.azure.com/.default`; sovereign clouds differ).
    pub scope: String,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Attempts per request for throttled and transient failures.
    pub max_attempts: u32,
    /// Longest wait between attempts (a larger Retry-After is returned to the caller instead).
    pub max_retry_delay: Duration,
    /// Wait between polls of an operation when Azure asks for none (no or a zero Retry-After);
    /// a Retry-After is honoured as given.
    pub min_poll_interval: Duration,
    /// The subscription's request budget (ARM's limits by default).
    pub budget: BudgetLimits,
    /// `User-Agent` of every request; ARM's activity log shows it, so it names the replica.
    pub user_agent: String,
}

impl ArmConfig {
    /// Azure public cloud.
    pub fn public_cloud() -> ArmConfig {
        ArmConfig::for_endpoint(
            "https://management.azure.com",
            "https://management.azure.com/.default",
        )
    }

    /// Any endpoint and scope (sovereign clouds, the emulator).
    pub fn for_endpoint(endpoint: &str, scope: &str) -> ArmConfig {
        ArmConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            scope: scope.to_string(),
            max_concurrency: 16,
            request_timeout: Duration::from_secs(60),
            max_attempts: 4,
            max_retry_delay: Duration::from_secs(30),
            min_poll_interval: Duration::from_secs(1),
            budget: BudgetLimits::default(),
            user_agent: concat!("stamp-operator/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A resource as read.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveResource {
    /// Body.
    pub body: Value,
    /// ETag, for `If-Match`.
    pub etag: Option<String>,
}

impl LiveResource {
    /// `properties.provisioningState`, if any.
    pub fn provisioning_state(&self) -> Option<&str> {
        self.body
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
    }
}

/// Result of a PUT.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// Finished synchronously with this body.
    Done(Value),
    /// A long-running operation to follow.
    Started(LroState),
}

/// Result of a DELETE.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteOutcome {
    /// Gone (or never there).
    Gone,
    /// A long-running operation to follow.
    Started(LroState),
}

/// Result of diff-before-PUT.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Live already matches; nothing was written.
    Unchanged(LiveResource),
    /// Live matches but an operation on it is still running.
    Busy(LiveResource),
    /// Written (created, or updated at `difference`).
    Written {
        /// First differing path (`None` when it did not exist).
        difference: Option<String>,
        /// What the PUT started.
        outcome: PutOutcome,
    },
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The pause the service asks for: `retry-after-ms` or `x-ms-retry-after-ms` (milliseconds,
    /// read first as Azure SDKs do), else `Retry-After` in seconds; at most
    /// `MAX_RETRY_AFTER` (see there).
    fn retry_after(&self) -> Option<Duration> {
        retry_after_of(|name| self.header(name))
    }
}

/// The longest pause a `Retry-After` may impose. Azure asks for seconds to minutes; a larger
/// value (a proxy's mistake, a hostile endpoint) must neither stall the subscription for days
/// nor overflow the clock arithmetic of the poll schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// `Answer::retry_after` over any header lookup.
fn retry_after_of<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Duration> {
    let number = |name| header(name).and_then(|v: &str| v.trim().parse::<u64>().ok());
    number("retry-after-ms")
        .or_else(|| number("x-ms-retry-after-ms"))
        .map(Duration::from_millis)
        .or_else(|| number("retry-after").map(|s| Duration::from_secs(s.min(u64::from(u32::MAX)))))
        .map(|asked| asked.min(MAX_RETRY_AFTER))
}

/// Which kept listing of a resource group a caller accepts (`ArmClient::list_group_recent`).
/// The default accepts none: every look reads afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListingAge {
    /// The oldest listing this caller accepts; zero asks for a fresh read.
    pub accepted: Duration,
    /// How long a listing nobody reads is kept: the most any caller accepts.
    pub kept: Duration,
}

/// The ARM engine's client.
pub struct ArmClient {
    http: reqwest::Client,
    config: ArmConfig,
    tokens: TokenSource,
    budget: Arc<ThrottleBudget>,
    permits: Semaphore,
    metrics: ArmMetrics,
    /// Recent group listings by lower-case group id, and recent reads of resources many objects
    /// require by lower-case id: objects that resync together (a stamp and its endpoint sets,
    /// the stamps of one Front Door) share one read.
    listings:
        std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<GroupListing>>>>,
    /// Per operation poll URL, when Azure asked to be polled again (only running operations).
    next_polls: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

/// A group's last listing: when it was taken, and what it said (`None`: no such group).
type GroupListing = Option<(Instant, Arc<Option<Vec<Value>>>)>;

fn subscription_of(id: &str) -> String {
    id.split('/').nth(2).unwrap_or_default().to_string()
}

fn resource_type_of(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    match parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("providers"))
    {
        Some(i) if parts.len() > i + 2 => {
            let mut t = parts[i + 1].to_string();
            for seg in parts[i + 2..].iter().step_by(2) {
                t.push('/');
                t.push_str(seg);
            }
            t
        }
        _ if parts.len() == 5 => "Microsoft.Resources/resourceGroups".into(),
        _ => "operation".into(),
    }
}

impl ArmClient {
    /// A client for `config` authenticating with `tokens`.
    pub fn new(
        config: ArmConfig,
        tokens: TokenSource,
        metrics: ArmMetrics,
    ) -> Result<ArmClient, AzureError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(90))
            // The bearer token goes to the ARM endpoint and nowhere else: a redirect is
            // answered as it came, never followed with the token.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AzureError::Invalid(e.to_string()))?;
        let permits = Semaphore::new(config.max_concurrency.max(1));
        let budget = Arc::new(ThrottleBudget::with_limits(config.budget));
        Ok(ArmClient {
            http,
            config,
            tokens,
            budget,
            permits,
            metrics,
            listings: Default::default(),
            next_polls: Default::default(),
        })
    }

    /// The budget (shared by every caller of this client).
    pub fn budget(&self) -> &ThrottleBudget {
        &self.budget
    }

    fn url(&self, id: &str, api_version: &str) -> String {
        format!("{}{id}?api-version={api_version}", self.config.endpoint)
    }

    /// Waits for a token of `class`. A write of a task with a patience (see `with_patience`)
    /// that the budget would hold longer — as foreseen, or as it turns out while requests of
    /// higher priority keep taking the tokens first — is given up unsent.
    async fn wait_for_budget(
        &self,
        subscription: &str,
        class: RequestClass,
    ) -> Result<(), AzureError> {
        let priority = super::budget::current_priority();
        let patience = match class {
            RequestClass::Write => super::budget::current_patience(),
            _ => None,
        };
        // Waiting at all is too long when more urgent work waits for the slot this holds.
        let gives_way =
            |wait: Duration| !wait.is_zero() && super::budget::outranked_by_contenders(priority);
        if let Some(p) = patience {
            let foreseen = self.budget.expected_wait(subscription, class, priority);
            if foreseen > p || gives_way(foreseen) {
                return Err(AzureError::Deferred(foreseen));
            }
        }
        let started = tokio::time::Instant::now();
        let mut waiting = None;
        loop {
            let wait = self.budget.reserve_at(subscription, class, priority);
            if wait.is_zero() {
                return Ok(());
            }
            waiting.get_or_insert_with(|| self.budget.queue(subscription, class, priority));
            if patience.is_some_and(|p| started.elapsed() + wait > p || gives_way(wait)) {
                return Err(AzureError::Deferred(self.budget.expected_wait(
                    subscription,
                    class,
                    priority,
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends one logical request, retrying throttled and transient failures within the budget.
    async fn send(
        &self,
        method: Method,
        url: &str,
        resource: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Answer, AzureError> {
        let subscription = subscription_of(resource);
        let resource_type = resource_type_of(resource);
        let class = match method {
            Method::GET | Method::HEAD => RequestClass::Read,
            Method::DELETE => RequestClass::Delete,
            _ => RequestClass::Write,
        };
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            self.wait_for_budget(&subscription, class).await?;
            let token = self.tokens.token().await?;
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|e| AzureError::Invalid(e.to_string()))?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token)
                .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
            if let Some(etag) = if_match {
                request = request.header("If-Match", etag);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = request.send().await;
            self.metrics
                .latency
                .observe(started.elapsed().as_secs_f64());
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    self.count(&method, &resource_type, 0);
                    let error = ArmError {
                        method: method.to_string(),
                        resource: resource.to_string(),
                        status: 0,
                        code: if e.is_timeout() {
                            "Timeout".into()
                        } else {
                            "ConnectionError".into()
                        },
                        message: e.to_string(),
                        request_id: None,
                        class: ErrorClass::Transient,
                        retry_after: None,
                    };
                    if attempt < self.config.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(error.into());
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            let answer = Answer {
                status,
                headers,
                body,
            };
            self.count(&method, &resource_type, status.as_u16());
            if let Some(left) = answer
                .header(class.remaining_header())
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.budget.observe(&subscription, class, left);
            }
            self.metrics
                .budget_tokens
                .get_or_create(&ClassLabels {
                    class: class.label().into(),
                })
                .set(self.budget.tokens(&subscription, class) as i64);
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                // The token may have been revoked or rotated: get a new one once.
                reauthenticated = true;
                self.tokens.invalidate().await;
                attempt -= 1;
                continue;
            }
            // A 429 whose code is `RetryableError` is one resource that cannot take the request
            // yet (a resource it references is still being updated): only this request waits.
            // Any other 429 is the subscription's throttling, and every request pauses. The
            // network provider answers `429 RetryableError` with details such as
            // `ReferencedResourceNotProvisioned` ("resource … is not in Succeeded state",
            // hashicorp/terraform#7986) or `RetryableErrorDueToAnotherOperation`
            // (cloudfoundry/bosh-azure-cpi-release#179), and "when [an operation is attempted]
            // on a resource with references that are in an updating state" (a Microsoft
            // engineer, Azure/azure-libraries-for-net#1001). Were one a subscription limit after
            // all, this request still waits out its Retry-After.
            let code = answer.body.pointer("/error/code").and_then(Value::as_str);
            let per_resource = code.is_some_and(|c| c.starts_with("Retryable"));
            if status == StatusCode::TOO_MANY_REQUESTS && !per_resource {
                self.metrics.throttled.inc();
                let wait = answer
                    .retry_after()
                    .unwrap_or(ErrorClass::Throttled.default_retry());
                self.budget.trip(&subscription, wait);
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt < self.config.max_attempts {
                let wait = self.backoff(attempt, answer.retry_after());
                if wait <= self.config.max_retry_delay {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(answer);
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| Duration::from_millis(200 * 2u64.pow(attempt.min(8))))
    }

    fn count(&self, method: &Method, resource_type: &str, status: u16) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                resource_type: resource_type.to_string(),
                status,
            })
            .inc();
    }

    fn error(&self, method: &str, resource: &str, answer: &Answer) -> AzureError {
        let code = answer
            .body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string();
        let message = answer
            .body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        AzureError::from(ArmError {
            method: method.to_string(),
            resource: resource.to_string(),
            status: answer.status.as_u16(),
            class: classify(answer.status.as_u16(), &code),
            code,
            message,
            request_id: answer.header("x-ms-request-id").map(String::from),
            retry_after: answer.retry_after(),
        })
    }

    /// GET; `None` when the resource does not exist.
    pub async fn get(
        &self,
        id: &str,
        api_version: &str,
    ) -> Result<Option<LiveResource>, AzureError> {
        let answer = self
            .send(Method::GET, &self.url(id, api_version), id, None, None)
            .await?;
        match answer.status.as_u16() {
            200 => Ok(Some(LiveResource {
                etag: answer
                    .header("etag")
                    .map(String::from)
                    .or_else(|| answer.body["etag"].as_str().map(String::from)),
                body: answer.body,
            })),
            404 => Ok(None),
            _ => Err(self.error("GET", id, &answer)),
        }
    }

    /// PUT (create or replace), optionally conditional on `if_match`.
    pub async fn put(
        &self,
        id: &str,
        api_version: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<PutOutcome, AzureError> {
        let answer = self
            .send(
                Method::PUT,
                &self.url(id, api_version),
                id,
                Some(body),
                if_match,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.error("PUT", id, &answer));
        }
        Ok(match self.operation(id, LroKind::Put, &answer) {
            Some(state) => PutOutcome::Started(state),
            None => PutOutcome::Done(answer.body),
        })
    }

    /// PATCH (tags and other patchable fields).
    pub async fn patch(
        &self,
        id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Value, AzureError> {
        let answer = self
            .send(
                Method::PATCH,
                &self.url(id, api_version),
                id,
                Some(body),
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.error("PATCH", id, &answer));
        }
        Ok(answer.body)
    }

    /// DELETE; a resource that is already gone counts as deleted.
    pub async fn delete(&self, id: &str, api_version: &str) -> Result<DeleteOutcome, AzureError> {
        let answer = self
            .send(Method::DELETE, &self.url(id, api_version), id, None, None)
            .await?;
        match answer.status.as_u16() {
            404 | 204 => Ok(DeleteOutcome::Gone),
            200..=202 => Ok(match self.operation(id, LroKind::Delete, &answer) {
                Some(state) => DeleteOutcome::Started(state),
                None => DeleteOutcome::Gone,
            }),
            _ => Err(self.error("DELETE", id, &answer)),
        }
    }

    /// `list_group`, answered from a listing of the same group no older than `age.accepted`
    /// when there is one. A change younger than that shows up at the next look instead of this
    /// one. Callers asking for the same group at once wait for one listing (objects resyncing
    /// in the same slot start together) instead of each reading it.
    pub async fn list_group_recent(
        &self,
        subscription: &str,
        group: &str,
        age: ListingAge,
    ) -> Result<Arc<Option<Vec<Value>>>, AzureError> {
        let key =
            format!("/subscriptions/{subscription}/resourcegroups/{group}").to_ascii_lowercase();
        self.recent(key, age, |_| true, self.list_group(subscription, group))
            .await
    }

    /// Every entry of the collection `collection` (a group's resources of one type,
    /// `…/providers/Microsoft.Network/networkSecurityGroups`, or a parent's children of one type,
    /// `…/ruleCollectionGroups`), answered from a read no older than `age.accepted` when there is
    /// one: the stamps of one Front Door share one read of its origins. `None` when the group
    /// or parent does not exist.
    pub async fn list_recent(
        &self,
        collection: &str,
        api_version: &str,
        age: ListingAge,
    ) -> Result<Arc<Option<Vec<Value>>>, AzureError> {
        let url = self.url(collection, api_version);
        let key = format!("{collection}?{api_version}").to_ascii_lowercase();
        self.recent(key, age, |_| true, self.list_pages(collection, url))
            .await
    }

    /// Whether `id` exists, answered from a read no older than `age.accepted` that found it,
    /// when there is one: what many objects require and another provides (the origin group
    /// fifty stamps join) is read once per look, not once per object. A read that found it
    /// missing is not reused: an object waiting for it may have been woken because it exists
    /// now, after another object's read.
    pub async fn exists_recent(
        &self,
        id: &str,
        api_version: &str,
        age: ListingAge,
    ) -> Result<bool, AzureError> {
        let read = async { Ok(self.get(id, api_version).await?.map(|live| vec![live.body])) };
        let found = self
            .recent(id.to_ascii_lowercase(), age, Option::is_some, read)
            .await?;
        Ok(found.is_some())
    }

    /// What `read` says, or what it said for `key` no longer than `age.accepted` ago if that
    /// answer is one to `reuse`. The answer is shared with every caller it serves, not copied.
    async fn recent(
        &self,
        key: String,
        age: ListingAge,
        reuse: fn(&Option<Vec<Value>>) -> bool,
        read: impl std::future::Future<Output = Result<Option<Vec<Value>>, AzureError>>,
    ) -> Result<Arc<Option<Vec<Value>>>, AzureError> {
        let entry = {
            let mut listings = self
                .listings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Forget reads nobody is waiting for that no caller would accept any more (with a
            // thousand stamps, kept listings would be most of the operator's memory).
            listings.retain(|_, e| {
                e.try_lock().map_or(true, |e| {
                    e.as_ref().is_some_and(|(at, _)| at.elapsed() <= age.kept)
                })
            });
            listings.entry(key).or_default().clone()
        };
        let mut entry = entry.lock().await;
        if let Some((at, listing)) = entry.as_ref() {
            if at.elapsed() <= age.accepted && reuse(listing) {
                return Ok(listing.clone());
            }
        }
        let taken = Instant::now();
        let listing = Arc::new(read.await?);
        *entry = Some((taken, listing.clone()));
        Ok(listing)
    }

    /// Every top-level resource of a group, with `changedTime`: one read for a whole stamp
    /// (one per page of a large group). `None` when the group does not exist.
    pub async fn list_group(
        &self,
        subscription: &str,
        group: &str,
    ) -> Result<Option<Vec<Value>>, AzureError> {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{group}/resources");
        let url = format!(
            "{}{id}?api-version=2021-04-01&$expand=changedTime,provisioningState",
            self.config.endpoint
        );
        self.list_pages(&id, url).await
    }

    /// The children of type `child_type` (`ruleCollectionGroups`) of `parent`: proxy children
    /// no group listing shows. `None` when the parent does not exist.
    pub async fn list_children(
        &self,
        parent: &str,
        child_type: &str,
        api_version: &str,
    ) -> Result<Option<Vec<Value>>, AzureError> {
        let id = format!("{parent}/{child_type}");
        let url = self.url(&id, api_version);
        self.list_pages(&id, url).await
    }

    /// Every entry of a collection, following `nextLink` page by page (each page a read from
    /// the budget). ARM pages every list: "If a nextLink is returned, the client must follow
    /// it to get the rest of the results" (Azure REST API guidelines, pagination); reading
    /// only the first page would take whatever lies past it for absent.
    async fn list_pages(&self, id: &str, first: String) -> Result<Option<Vec<Value>>, AzureError> {
        let mut entries = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            self.on_endpoint(&url)?;
            let mut answer = self.send(Method::GET, &url, id, None, None).await?;
            match answer.status.as_u16() {
                200 => {}
                404 if entries.is_empty() => return Ok(None),
                _ => return Err(self.error("GET", id, &answer)),
            }
            if let Value::Array(page) = answer.body["value"].take() {
                entries.extend(page);
            }
            next = answer.body["nextLink"]
                .as_str()
                .filter(|link| !link.is_empty())
                .map(str::to_string);
        }
        Ok(Some(entries))
    }

    /// `Ok` when `url` lies on the configured ARM endpoint (same scheme, host and port): the
    /// only place the bearer token may go. A URL Azure handed us (a poll URL, a `nextLink`)
    /// that points elsewhere is refused, not fetched.
    fn on_endpoint(&self, url: &str) -> Result<(), AzureError> {
        let origin = |raw: &str| {
            reqwest::Url::parse(raw).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_ascii_lowercase),
                    u.port_or_known_default(),
                )
            })
        };
        match (origin(url), origin(&self.config.endpoint)) {
            (Some(asked), Some(ours)) if asked == ours => Ok(()),
            _ => {
                tracing::warn!(%url, endpoint = %self.config.endpoint, "refused to send the ARM token to a URL off the ARM endpoint");
                Err(AzureError::Invalid(format!(
                    "{url} is not on the ARM endpoint {}: not fetched with the operator's token",
                    self.config.endpoint
                )))
            }
        }
    }

    fn operation(&self, id: &str, kind: LroKind, answer: &Answer) -> Option<LroState> {
        let (url, style) = match (
            answer.header("azure-asyncoperation"),
            answer.header("location"),
        ) {
            (Some(url), _) => (url, PollStyle::AsyncOperation),
            (None, Some(url)) => (url, PollStyle::Location),
            (None, None) => return None,
        };
        if let Some(asked) = answer.retry_after() {
            self.poll_not_before(url, Some(asked));
        }
        Some(LroState {
            resource_id: id.to_string(),
            kind,
            poll_url: url.to_string(),
            style,
            started_at: unix_now(),
        })
    }

    /// Remembers when Azure asked `url` to be polled again (`None`: the operation ended).
    fn poll_not_before(&self, url: &str, asked: Option<Duration>) {
        let mut next = self
            .next_polls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match asked {
            Some(asked) => next.insert(url.to_string(), Instant::now() + self.poll_pause(asked)),
            None => next.remove(url),
        };
    }

    /// How long until Azure wants `state` polled again (zero when it named no time or it is
    /// already due).
    pub fn poll_due_in(&self, state: &LroState) -> Duration {
        self.next_polls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&state.poll_url)
            .map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
            })
    }

    /// Polls an operation once.
    pub async fn poll(&self, state: &LroState) -> Result<LroStatus, AzureError> {
        let status = self.poll_once(state).await;
        let asked = match &status {
            Ok(LroStatus::Running(asked)) => Some(*asked),
            _ => None,
        };
        self.poll_not_before(&state.poll_url, asked);
        status
    }

    async fn poll_once(&self, state: &LroState) -> Result<LroStatus, AzureError> {
        // A poll URL persisted in an object's status can be rewritten by anyone allowed to
        // patch that status: it is fetched with our token only on the ARM endpoint itself.
        self.on_endpoint(&state.poll_url)?;
        let answer = self
            .send(Method::GET, &state.poll_url, &state.resource_id, None, None)
            .await?;
        let wait = answer.retry_after().unwrap_or(Duration::from_secs(5));
        let failed = |answer: &Answer| LroStatus::Failed {
            code: answer
                .body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("OperationFailed")
                .to_string(),
            message: answer
                .body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        match (state.style, answer.status.as_u16()) {
            (_, 404) => Err(self.error("POLL", &state.resource_id, &answer)),
            (PollStyle::AsyncOperation, 200) => {
                Ok(match answer.body["status"].as_str().unwrap_or_default() {
                    "Succeeded" => LroStatus::Succeeded,
                    "Failed" | "Canceled" => failed(&answer),
                    _ => LroStatus::Running(wait),
                })
            }
            (PollStyle::Location, 202) | (PollStyle::AsyncOperation, 202) => {
                Ok(LroStatus::Running(wait))
            }
            (PollStyle::Location, 200 | 201 | 204) => Ok(LroStatus::Succeeded),
            (_, status) if status >= 500 || status == 429 => Ok(LroStatus::Running(wait)),
            _ => Ok(failed(&answer)),
        }
    }

    /// The pause before polling again: what the service asked for, exactly (as Azure SDKs do);
    /// `min_poll_interval` when it asked for none.
    fn poll_pause(&self, asked: Duration) -> Duration {
        if asked.is_zero() {
            self.config.min_poll_interval
        } else {
            asked
        }
    }

    /// Sleeps until Azure said `state` would be done (its last Retry-After), without polling:
    /// for an operation whose end a group listing tells as well. The next poll, if any, is
    /// due at once.
    pub async fn until_due(&self, state: &LroState) {
        self.metrics.in_flight_operations.inc();
        self.sleep_until_poll_due(&state.poll_url).await;
        self.poll_not_before(&state.poll_url, None);
        self.metrics.in_flight_operations.dec();
    }

    /// Sleeps until Azure asked `poll_url` to be polled again (whoever polled last: an earlier
    /// wait, a resumed pass); at once when it named no time.
    async fn sleep_until_poll_due(&self, poll_url: &str) {
        let due = self
            .next_polls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(poll_url)
            .copied();
        if let Some(at) = due {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
    }

    /// Polls until the operation ends, honouring Retry-After.
    pub async fn wait(&self, state: &LroState) -> Result<(), AzureError> {
        self.metrics.in_flight_operations.inc();
        let result = loop {
            self.sleep_until_poll_due(&state.poll_url).await;
            // Boxed: a waiter sleeps far longer than it polls, and thousands wait at once (one
            // per operation in flight); unboxed each would carry a whole request's state.
            match Box::pin(self.poll(state)).await {
                Ok(LroStatus::Running(_)) => {}
                Ok(LroStatus::Succeeded) => break Ok(()),
                Ok(LroStatus::Failed { code, message }) => {
                    break Err(AzureError::OperationFailed {
                        resource: state.resource_id.clone(),
                        code,
                        message,
                    })
                }
                Err(e) => break Err(e),
            }
        };
        self.metrics.in_flight_operations.dec();
        result
    }

    /// Diff before PUT: one GET; a PUT (with `If-Match` on the live ETag) only when the live
    /// resource does not already say what `desired` says, or its last operation failed.
    pub async fn apply(
        &self,
        id: &str,
        api_version: &str,
        desired: &Value,
    ) -> Result<ApplyOutcome, AzureError> {
        let live = self.get(id, api_version).await?;
        let (difference, etag) = match &live {
            None => (None, None),
            Some(live) => {
                let difference = first_difference(desired, &live.body);
                match (difference, live.provisioning_state()) {
                    (None, Some("Succeeded") | None) => {
                        return Ok(ApplyOutcome::Unchanged(live.clone()))
                    }
                    (None, Some("Updating" | "Creating" | "Deleting")) => {
                        return Ok(ApplyOutcome::Busy(live.clone()))
                    }
                    (None, Some(_)) => (
                        Some("properties.provisioningState".to_string()),
                        live.etag.clone(),
                    ),
                    (Some(d), _) => (Some(d), live.etag.clone()),
                }
            }
        };
        let outcome = self.put(id, api_version, desired, etag.as_deref()).await?;
        Ok(ApplyOutcome::Written {
            difference,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds_and_is_clamped() {
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        };
        assert_eq!(
            retry_after_of(headers(&[("retry-after", "10"), ("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_of(headers(&[("retry-after", "10")])),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after_of(headers(&[("retry-after", "18446744073709551615")])),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after_of(headers(&[("retry-after-ms", "18446744073709551615")])),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after_of(headers(&[("retry-after", "soon")])), None);
    }
}
