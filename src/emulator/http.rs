//! The HTTP surface: ARM's paths, status codes, headers and long-running-operation protocol,
//! plus `/_emulator/*` for tests (stats, inventory, faults).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::error::ArmError;
use super::faults::{FaultAction, FaultRule};
use super::network;
use super::path::{self, ResourcePath, Target};
use super::state::{azure_retry_after_seconds, RetryAfter};
use super::state::{now_rfc3339, Operation, OperationKind, RequestRecord, World};
use super::throttle::{Admission, OperationClass};
use super::Shared;

/// A response before it becomes HTTP.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
        }
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A list reply cut to the page `cursor` asks for, with `nextLink` when more follow.
    fn paged(mut self, page_size: usize, cursor: &PageCursor) -> Reply {
        let Some(Value::Array(all)) = self.body.as_mut().map(|b| b["value"].take()) else {
            return self;
        };
        let total = all.len();
        let end = cursor.skip.saturating_add(page_size.max(1)).min(total);
        let page: Vec<Value> = all
            .into_iter()
            .skip(cursor.skip)
            .take(end.saturating_sub(cursor.skip))
            .collect();
        let mut body = json!({ "value": page });
        if end < total {
            body["nextLink"] = json!(cursor.link(end));
        }
        self.body = Some(body);
        self
    }
}

impl From<ArmError> for Reply {
    fn from(e: ArmError) -> Reply {
        Reply::json(e.status, e.body())
    }
}

/// What the handler decided beyond the reply.
enum Outcome {
    Reply(Reply, Duration),
    Drop,
}

/// Serves one request. An `Err` makes hyper close the connection without answering (a fault).
pub async fn handle(
    shared: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let base = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let outcome = {
        let mut world = shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        route(&mut world, &parts, &bytes, &base)
    };
    match outcome {
        Outcome::Drop => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault: connection dropped",
        )),
        Outcome::Reply(reply, delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(to_http(reply))
        }
    }
}

fn to_http(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in &reply.headers {
        builder = builder.header(k, v);
    }
    let body = match reply.body {
        Some(v) => {
            builder = builder.header("content-type", "application/json; charset=utf-8");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

fn route(
    world: &mut World,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    base: &str,
) -> Outcome {
    let path = parts.uri.path().to_string();
    if let Some(internal) = path.strip_prefix("/_emulator/") {
        return Outcome::Reply(
            internal_endpoint(world, &parts.method, internal, body),
            Duration::ZERO,
        );
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation = parts
        .headers
        .get("x-ms-correlation-request-id")
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| request_id.clone());
    let method = parts.method.as_str().to_string();
    let target = path::parse(&path);
    let resource_type = match &target {
        Some(Target::Resource(p)) => Some(p.resource_type.clone()),
        Some(Target::Collection { resource_type, .. }) => Some(resource_type.clone()),
        Some(Target::Operation { .. }) => Some("operations".into()),
        _ => None,
    };
    let class = match parts.method {
        Method::GET | Method::HEAD => OperationClass::Read,
        Method::DELETE => OperationClass::Delete,
        _ => OperationClass::Write,
    };
    let mut delay = Duration::ZERO;
    let mut fail_operation = None;
    let reply = (|| -> Result<Reply, Outcome> {
        if let Some(reply) = authenticate(world, parts) {
            return Ok(reply);
        }
        let Some(target) = &target else {
            return Ok(ArmError::new(
                404,
                "InvalidResourceType",
                format!("The resource path '{path}' is not supported."),
            )
            .into());
        };
        let api_version = query_param(parts.uri.query(), "api-version");
        if api_version.is_none() {
            return Ok(ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
            .into());
        }
        let subscription = path.split('/').nth(2).unwrap_or_default().to_string();
        let remaining = match world.throttle.admit(&subscription, class, Instant::now()) {
            Admission::Admitted(left) => left,
            Admission::Throttled(wait) => {
                world.stats.throttled += 1;
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                let kind = match class {
                    OperationClass::Read => "read",
                    OperationClass::Write => "write",
                    OperationClass::Delete => "delete",
                };
                return Ok(Reply::from(ArmError::new(
                    429,
                    "SubscriptionRequestsThrottled",
                    format!("Number of '{kind}' requests for subscription '{subscription}' exceeded the limit. Please try again after '{seconds}' seconds."),
                ))
                .header("Retry-After", seconds.to_string())
                .header(class.header(), "0"));
            }
        };
        world.complete_due(Instant::now());
        match world.faults.take(&method, resource_type.as_deref(), &path) {
            Some(FaultAction::DropConnection) => return Err(Outcome::Drop),
            Some(FaultAction::Status {
                status,
                code,
                retry_after_seconds,
            }) => {
                let mut reply = Reply::from(ArmError::new(
                    status,
                    &code,
                    format!("Injected fault {code}."),
                ));
                if let Some(s) = retry_after_seconds {
                    reply = reply.header("Retry-After", s.to_string());
                }
                if status == 429 {
                    world.stats.throttled += 1;
                }
                return Ok(reply.header(class.header(), remaining.to_string()));
            }
            Some(FaultAction::Delay { millis }) => delay = Duration::from_millis(millis),
            Some(FaultAction::FailOperation { code }) => {
                fail_operation = Some(ArmError::new(
                    400,
                    &code,
                    format!("Injected failure {code} of the long-running operation."),
                ))
            }
            None => {}
        }
        let api_version = api_version.unwrap_or_default();
        let reply = match target {
            Target::Operation { id, result } => {
                world.stats.operation_polls += 1;
                poll(world, id, *result)
            }
            Target::GroupListing {
                subscription,
                resource_group,
            } => list_group(world, subscription, resource_group).paged(
                world.config.page_size,
                &PageCursor::of(base, &path, parts.uri.query()),
            ),
            Target::Collection {
                subscription,
                resource_group,
                resource_type,
                parent,
            } => list_collection(
                world,
                subscription,
                resource_group,
                resource_type,
                parent.as_deref(),
            )
            .paged(
                world.config.page_size,
                &PageCursor::of(base, &path, parts.uri.query()),
            ),
            Target::Resource(p) => match parts.method {
                Method::GET => get(world, p),
                Method::PUT => put(
                    world,
                    p,
                    parts,
                    body,
                    &api_version,
                    base,
                    fail_operation.take(),
                ),
                Method::PATCH => patch(world, p, body, base, &api_version),
                Method::DELETE => delete(world, p, base, &api_version),
                _ => ArmError::new(
                    405,
                    "MethodNotAllowed",
                    format!("The method {method} is not allowed."),
                )
                .into(),
            },
        };
        Ok(reply.header(class.header(), remaining.to_string()))
    })();
    let reply = match reply {
        Ok(reply) => reply,
        Err(outcome) => return outcome,
    };
    let reply = reply
        .header("x-ms-request-id", request_id.clone())
        .header("x-ms-correlation-request-id", correlation);
    world.stats.requests += 1;
    *world.stats.by_method.entry(method.clone()).or_default() += 1;
    *world
        .stats
        .by_type
        .entry(resource_type.unwrap_or_else(|| "unknown".into()))
        .or_default() += 1;
    *world.stats.by_status.entry(reply.status).or_default() += 1;
    let client_request_id = parts
        .headers
        .get("x-ms-client-request-id")
        .and_then(|h| h.to_str().ok())
        .map(String::from);
    let user_agent = parts
        .headers
        .get("user-agent")
        .and_then(|h| h.to_str().ok())
        .map(String::from);
    world.log.push(RequestRecord {
        method,
        path,
        status: reply.status,
        request_id,
        client_request_id,
        user_agent,
        at: Instant::now(),
    });
    Outcome::Reply(reply, delay)
}

fn authenticate(world: &World, parts: &hyper::http::request::Parts) -> Option<Reply> {
    let header = parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Some(
            ArmError::new(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
            .into(),
        );
    };
    match &world.config.token {
        Some(expected) if expected != token => Some(
            ArmError::new(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
            .into(),
        ),
        _ => None,
    }
}

fn not_found(p: &ResourcePath) -> Reply {
    let rg = p.resource_group.clone().unwrap_or_default();
    ArmError::new(404, "ResourceNotFound", format!("The Resource '{}/{}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", p.resource_type, p.name)).into()
}

fn group_missing(world: &World, p: &ResourcePath) -> Option<Reply> {
    if p.is("Microsoft.Resources/resourceGroups") {
        return None;
    }
    let group = p.group_id()?;
    let exists = world.get(&group).is_some_and(|g| !g.deleting);
    (!exists).then(|| {
        ArmError::new(
            404,
            "ResourceGroupNotFound",
            format!(
                "Resource group '{}' could not be found.",
                p.resource_group.clone().unwrap_or_default()
            ),
        )
        .into()
    })
}

fn get(world: &World, p: &ResourcePath) -> Reply {
    if let Some(reply) = group_missing(world, p) {
        return reply;
    }
    match world.get(&p.id) {
        Some(r) => Reply::json(200, network::render(world, r)).header("ETag", r.etag.clone()),
        None if p.is("Microsoft.Resources/resourceGroups") => ArmError::new(
            404,
            "ResourceGroupNotFound",
            format!("Resource group '{}' could not be found.", p.name),
        )
        .into(),
        None => not_found(p),
    }
}

/// How a type answers writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteStyle {
    /// 200/201 with the final body.
    Synchronous,
    /// 200/201 with provisioningState Updating and `Azure-AsyncOperation`.
    AsyncOperation,
    /// 202 with `Location` and `Azure-AsyncOperation`, no body (private DNS).
    Accepted,
}

fn style(p: &ResourcePath) -> WriteStyle {
    let t = p.resource_type.to_ascii_lowercase();
    if t == "microsoft.network/privatednszones"
        || t == "microsoft.network/privatednszones/virtualnetworklinks"
    {
        WriteStyle::Accepted
    } else if t.starts_with("microsoft.network/privatednszones/")
        || t == "microsoft.resources/resourcegroups"
    {
        WriteStyle::Synchronous
    } else if t.starts_with("microsoft.network/") || t.starts_with("microsoft.cdn/") {
        WriteStyle::AsyncOperation
    } else {
        WriteStyle::Synchronous
    }
}

fn requires_location(p: &ResourcePath) -> bool {
    p.parent.is_none()
        && (p.namespace().eq_ignore_ascii_case("Microsoft.Network")
            || p.is("Microsoft.Resources/resourceGroups")
            || p.is("Microsoft.Cdn/profiles"))
}

/// Writes to one VNet and its subnets conflict, as do writes to one NSG and its rules, one route
/// table and its routes, and one firewall policy's groups.
fn lock_key(p: &ResourcePath) -> String {
    let t = p.resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.network/virtualnetworks/subnets"
        | "microsoft.network/networksecuritygroups/securityrules"
        | "microsoft.network/routetables/routes"
        | "microsoft.network/firewallpolicies/rulecollectiongroups"
        | "microsoft.network/privatelinkservices/privateendpointconnections" => {
            p.parent.clone().unwrap_or_default().to_ascii_lowercase()
        }
        _ => p.key(),
    }
}

/// What an operation on `p` holds while it runs: its own lock key and, for a firewall, the
/// firewall policy and the VNet it names — "a firewall operation holds its policy and its VNet"
/// (issue #24): while it runs, a rule collection group or subnet write is refused.
fn operation_lock_keys(p: &ResourcePath, body: Option<&Value>) -> Vec<String> {
    let mut keys = vec![lock_key(p)];
    if p.is("Microsoft.Network/azureFirewalls") {
        let body = body.cloned().unwrap_or(Value::Null);
        if let Some(policy) = body
            .pointer("/properties/firewallPolicy/id")
            .and_then(Value::as_str)
        {
            keys.push(policy.to_ascii_lowercase());
        }
        let configs = body
            .pointer("/properties/ipConfigurations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for config in configs {
            if let Some(subnet) = config
                .pointer("/properties/subnet/id")
                .and_then(Value::as_str)
            {
                if let Some((vnet, _)) = subnet.to_ascii_lowercase().split_once("/subnets/") {
                    keys.push(vnet.to_string());
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The `Azure-AsyncOperation` and `Location` URLs of an operation, shaped as each provider
/// shapes them: the network provider's `…/providers/Microsoft.Network/locations/{location}/
/// operations/{id}` and `…/operationResults/{id}` (azure-sdk-for-node network recordings),
/// private DNS's `…/resourceGroups/{group}/providers/Microsoft.Network/
/// privateDnsOperationStatuses/{id}` and `…/privateDnsOperationResults/{id}` (privatedns
/// 2024-06-01 `examples/PrivateZonePut.json`), the others' `…/locations/{location}/
/// operationStatuses/{id}` and `…/operationResults/{id}`.
fn operation_urls(
    base: &str,
    p: &ResourcePath,
    location: &str,
    op_id: &str,
    api_version: &str,
) -> (String, String) {
    let t = p.resource_type.to_ascii_lowercase();
    let query = format!("?api-version={api_version}");
    if t.starts_with("microsoft.network/privatednszones") {
        let stem = format!(
            "{base}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network",
            p.subscription,
            p.resource_group.clone().unwrap_or_default()
        );
        return (
            format!("{stem}/privateDnsOperationStatuses/{op_id}{query}"),
            format!("{stem}/privateDnsOperationResults/{op_id}{query}"),
        );
    }
    let stem = format!(
        "{base}/subscriptions/{}/providers/{}/locations/{location}",
        p.subscription,
        p.namespace()
    );
    let status = if t.starts_with("microsoft.network/") {
        "operations"
    } else {
        "operationStatuses"
    };
    (
        format!("{stem}/{status}/{op_id}{query}"),
        format!("{stem}/operationResults/{op_id}{query}"),
    )
}

fn start_operation(
    world: &mut World,
    p: &ResourcePath,
    kind: OperationKind,
    failure: Option<ArmError>,
) -> (String, Duration) {
    let duration = match kind {
        OperationKind::Put => world.config.latency.put(&p.resource_type),
        OperationKind::Delete => world.config.latency.delete(&p.resource_type),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let asked = match world.config.retry_after {
        RetryAfter::Azure => Some(Duration::from_secs_f64(
            azure_retry_after_seconds(&p.resource_type) * world.config.latency.factor,
        )),
        RetryAfter::TimeLeft => None,
    };
    let lock_keys = operation_lock_keys(p, world.get(&p.id).map(|r| &r.body));
    world.begin(
        id.clone(),
        Operation {
            resource_key: p.key(),
            kind,
            lock_keys,
            started: Instant::now(),
            duration,
            failure,
            finished: false,
            asked,
        },
    );
    if let Some(r) = world.resources.get_mut(&p.key()) {
        match kind {
            OperationKind::Put => r.operation = Some(id.clone()),
            OperationKind::Delete => r.deleting = true,
        }
    }
    (id, asked.unwrap_or(duration))
}

/// Whole seconds (0 under a second: poll again right away), at most a minute.
fn retry_after(d: Duration) -> String {
    d.as_secs().min(60).to_string()
}

/// The same in milliseconds (`retry-after-ms`, which Azure SDKs read before `Retry-After`):
/// with latencies sped up, whole seconds would round most operations down to "poll now".
fn retry_after_ms(d: Duration) -> String {
    // Rounded up: "0" would mean "poll now" while the operation is still running.
    d.as_micros().div_ceil(1000).min(60_000).to_string()
}

fn put(
    world: &mut World,
    p: &ResourcePath,
    parts: &hyper::http::request::Parts,
    raw: &Bytes,
    api_version: &str,
    base: &str,
    failure: Option<ArmError>,
) -> Reply {
    let body: Value = match serde_json::from_slice(raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            )
            .into()
        }
    };
    if let Err(problem) =
        super::spec_schema::validate(super::spec_schema::committed(), &p.resource_type, &body)
    {
        return ArmError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid: {problem}."),
        )
        .into();
    }
    if let Some(group) = p
        .group_id()
        .filter(|_| !p.is("Microsoft.Resources/resourceGroups"))
    {
        if world.get(&group).is_some_and(|g| g.deleting) {
            // ARM refuses writes into a group being deleted with 409, not 404.
            return ArmError::new(
                409,
                "ResourceGroupBeingDeleted",
                format!(
                    "The resource group '{}' is in deprovisioning state and cannot perform this operation.",
                    p.resource_group.clone().unwrap_or_default()
                ),
            )
            .into();
        }
    }
    if let Some(reply) = group_missing(world, p) {
        return reply;
    }
    if let Some(parent) = &p.parent {
        if world.get(parent).is_none_or(|r| r.deleting) {
            return ArmError::new(404, "ParentResourceNotFound", format!("Can not perform requested operation on nested resource. Parent resource '{parent}' not found.")).into();
        }
    }
    let existing_etag = world.get(&p.id).map(|r| r.etag.clone());
    if let Some(expected) = parts.headers.get("if-match").and_then(|h| h.to_str().ok()) {
        if expected != "*" && existing_etag.as_deref() != Some(expected) {
            return ArmError::new(
                412,
                "PreconditionFailed",
                format!("The specified precondition 'If-Match = {expected}' failed."),
            )
            .into();
        }
    }
    if parts
        .headers
        .get("if-none-match")
        .and_then(|h| h.to_str().ok())
        == Some("*")
        && existing_etag.is_some()
    {
        return ArmError::new(
            412,
            "PreconditionFailed",
            "The resource already exists (If-None-Match: *).",
        )
        .into();
    }
    if world.locked(&lock_key(p)) || world.get(&p.id).is_some_and(|r| r.deleting) {
        return ArmError::new(409, "AnotherOperationInProgress", format!("Operation 'PUT' on resource '{}' is not allowed: another operation on this or a dependent resource is in progress. Retry later.", p.id)).into();
    }
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .map(String::from);
    if requires_location(p) && location.is_none() {
        return ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        )
        .into();
    }
    let stored = match network::before_put(world, p, body, api_version) {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let created = world.upsert(&p.id, &p.resource_type, stored);
    let status = if created { 201 } else { 200 };
    let op_location = location
        .or_else(|| {
            p.parent.as_ref().and_then(|parent| {
                world.get(parent).and_then(|r| {
                    r.body
                        .get("location")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
            })
        })
        .unwrap_or_else(|| "global".into());
    match style(p) {
        WriteStyle::Synchronous => {
            let r = world.get(&p.id).cloned();
            match r {
                Some(r) => Reply::json(status, network::render(world, &r)),
                None => not_found(p),
            }
        }
        WriteStyle::AsyncOperation => {
            let (op, pause) = start_operation(world, p, OperationKind::Put, failure);
            let (status_url, _) = operation_urls(base, p, &op_location, &op, api_version);
            let r = world.get(&p.id).cloned();
            let body = r.map(|r| network::render(world, &r)).unwrap_or(Value::Null);
            Reply::json(status, body)
                .header("Azure-AsyncOperation", status_url)
                .header("Retry-After", retry_after(pause))
                .header("retry-after-ms", retry_after_ms(pause))
        }
        WriteStyle::Accepted => {
            let (op, pause) = start_operation(world, p, OperationKind::Put, failure);
            let (status_url, result_url) = operation_urls(base, p, &op_location, &op, api_version);
            Reply::empty(202)
                .header("Azure-AsyncOperation", status_url)
                .header("Location", result_url)
                .header("Retry-After", retry_after(pause))
                .header("retry-after-ms", retry_after_ms(pause))
        }
    }
}

fn patch(world: &mut World, p: &ResourcePath, raw: &Bytes, base: &str, api_version: &str) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(raw) else {
        return ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        )
        .into();
    };
    let Some(r) = world.resources.get_mut(&p.key()) else {
        return not_found(p);
    };
    if let Some(tags) = body.get("tags") {
        r.body["tags"] = tags.clone();
        r.etag = World::new_etag();
        r.changed_time = now_rfc3339();
    }
    let r = r.clone();
    // A private DNS zone's or link's PATCH is long-running like its PUT (privatedns.json
    // 2024-06-01: `PrivateZones_Update` and `VirtualNetworkLinks_Update` answer 200 or 202,
    // `x-ms-long-running-operation`); a record set's is not.
    if style(p) == WriteStyle::Accepted {
        if world.locked(&lock_key(p)) {
            return ArmError::new(409, "AnotherOperationInProgress", format!("Operation 'PATCH' on resource '{}' is not allowed: another operation is in progress.", p.id)).into();
        }
        let (op, pause) = start_operation(world, p, OperationKind::Put, None);
        let (status_url, result_url) = operation_urls(base, p, "global", &op, api_version);
        return Reply::empty(202)
            .header("Azure-AsyncOperation", status_url)
            .header("Location", result_url)
            .header("Retry-After", retry_after(pause))
            .header("retry-after-ms", retry_after_ms(pause));
    }
    Reply::json(200, network::render(world, &r))
}

fn delete(world: &mut World, p: &ResourcePath, base: &str, api_version: &str) -> Reply {
    let is_group = p.is("Microsoft.Resources/resourceGroups");
    if !is_group {
        if let Some(reply) = group_missing(world, p) {
            return reply;
        }
    }
    let Some(existing) = world.get(&p.id).cloned() else {
        return if is_group {
            ArmError::new(
                404,
                "ResourceGroupNotFound",
                format!("Resource group '{}' could not be found.", p.name),
            )
            .into()
        } else {
            Reply::empty(204)
        };
    };
    if existing.deleting {
        let (_, result) = operation_urls(base, p, "global", "pending", api_version);
        return Reply::empty(202)
            .header("Location", result)
            .header("Retry-After", "1");
    }
    if world.locked(&lock_key(p)) {
        return ArmError::new(409, "AnotherOperationInProgress", format!("Operation 'DELETE' on resource '{}' is not allowed: another operation is in progress.", p.id)).into();
    }
    if let Err(e) = network::check_delete(world, p) {
        return e.into();
    }
    if style(p) == WriteStyle::Synchronous && !is_group {
        network::before_delete(world, &p.key());
        world.remove_tree(&p.key());
        return Reply::empty(200);
    }
    let location = existing
        .body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("global")
        .to_string();
    let (op, pause) = start_operation(world, p, OperationKind::Delete, None);
    let (status_url, result_url) = operation_urls(base, p, &location, &op, api_version);
    let reply = Reply::empty(202)
        .header("Location", result_url)
        .header("Retry-After", retry_after(pause))
        .header("retry-after-ms", retry_after_ms(pause));
    if is_group {
        reply
    } else {
        reply.header("Azure-AsyncOperation", status_url)
    }
}

fn poll(world: &mut World, id: &str, result: bool) -> Reply {
    let Some(op) = world.operations.get(id).cloned() else {
        return ArmError::new(
            404,
            "OperationNotFound",
            format!("The operation '{id}' was not found."),
        )
        .into();
    };
    let now = Instant::now();
    if !op.finished {
        let remaining = op
            .asked
            .unwrap_or_else(|| op.due_at().saturating_duration_since(now));
        if result {
            // The Location URL answers 202 until the operation is over (as private DNS does).
            return Reply::empty(202)
                .header("Retry-After", retry_after(remaining))
                .header("retry-after-ms", retry_after_ms(remaining));
        }
        return Reply::json(200, json!({ "status": "InProgress" }))
            .header("Retry-After", retry_after(remaining))
            .header("retry-after-ms", retry_after_ms(remaining));
    }
    match (&op.failure, result) {
        (Some(e), false) => Reply::json(
            200,
            json!({ "status": "Failed", "error": { "code": e.code, "message": e.message } }),
        ),
        (Some(e), true) => e.clone().into(),
        (None, false) => Reply::json(200, json!({ "status": "Succeeded" })),
        (None, true) => match op.kind {
            OperationKind::Delete => Reply::empty(204),
            OperationKind::Put => match world.resources.get(&op.resource_key).cloned() {
                Some(r) => Reply::json(200, network::render(world, &r)),
                None => Reply::empty(204),
            },
        },
    }
}

fn list_group(world: &World, subscription: &str, resource_group: &str) -> Reply {
    let prefix =
        format!("/subscriptions/{subscription}/resourcegroups/{resource_group}/providers/")
            .to_ascii_lowercase();
    let value: Vec<Value> = world
        .under(&prefix)
        // Top-level resources and tracked children (those with a location, such as private DNS
        // zone links and Front Door endpoints) are listed; proxy children are not.
        .filter(|(k, r)| {
            k[prefix.len()..].split('/').count() == 3 || r.body.get("location").is_some()
        })
        .map(|(_, r)| {
            json!({
                "id": r.id, "name": r.id.rsplit('/').next(), "type": r.resource_type,
                "location": r.body.get("location"), "tags": r.body.get("tags"),
                "createdTime": r.created_time, "changedTime": r.changed_time,
                "provisioningState": super::state::provisioning_state(r),
            })
        })
        .collect();
    Reply::json(200, json!({ "value": value }))
}

fn list_collection(
    world: &World,
    subscription: &str,
    resource_group: &str,
    resource_type: &str,
    parent: Option<&str>,
) -> Reply {
    let prefix = match parent {
        Some(parent) => {
            // ARM answers 404 for the children of a parent that does not exist.
            if !world.resources.contains_key(&parent.to_ascii_lowercase()) {
                return ArmError::new(
                    404,
                    "ParentResourceNotFound",
                    format!("Can not perform requested operation on nested resource. Parent resource '{parent}' not found."),
                )
                .into();
            }
            format!("{parent}/").to_ascii_lowercase()
        }
        None => format!("/subscriptions/{subscription}/resourcegroups/{resource_group}/")
            .to_ascii_lowercase(),
    };
    let value: Vec<Value> = world
        .under(&prefix)
        .filter(|(_, r)| r.resource_type.eq_ignore_ascii_case(resource_type))
        .map(|(_, r)| network::render(world, r))
        .collect();
    Reply::json(200, json!({ "value": value }))
}

/// Where a list request stands in its pages: how many entries earlier pages held (its
/// `$skiptoken`), and the URL of the page after `n` entries.
struct PageCursor {
    skip: usize,
    base: String,
}

impl PageCursor {
    fn of(base: &str, path: &str, query: Option<&str>) -> PageCursor {
        let kept: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("$skiptoken="))
            .collect();
        PageCursor {
            skip: query_param(query, "$skiptoken")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            base: format!("{base}{path}?{}", kept.join("&")),
        }
    }

    fn link(&self, n: usize) -> String {
        format!("{}&$skiptoken={n}", self.base)
    }
}

fn internal_endpoint(world: &mut World, method: &Method, path: &str, body: &Bytes) -> Reply {
    match (method, path) {
        (&Method::GET, "stats") => {
            Reply::json(200, serde_json::to_value(&world.stats).unwrap_or_default())
        }
        (&Method::GET, "resources") => Reply::json(200, json!({ "value": world.inventory() })),
        (&Method::GET, "requests") => Reply::json(200, json!({ "value": world.log })),
        (&Method::POST, "faults") => match serde_json::from_slice::<FaultRule>(body) {
            Ok(rule) => {
                world.faults.add(rule);
                Reply::empty(204)
            }
            Err(e) => ArmError::bad_request("InvalidFault", e.to_string()).into(),
        },
        (&Method::DELETE, "faults") => {
            world.faults.clear();
            Reply::empty(204)
        }
        _ => ArmError::new(
            404,
            "NotFound",
            format!("/_emulator/{path} is not an emulator endpoint"),
        )
        .into(),
    }
}
