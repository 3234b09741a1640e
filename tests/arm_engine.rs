//! The ARM engine against the emulator: long-running operations (success, failure, resume after
//! a restart), diff-before-PUT, ETags, conflicts, throttling and the breaker, rotating tokens.

use std::time::Duration;

use serde_json::{json, Value};
use stamp_operator::azure::*;
use stamp_operator::emulator::{
    BucketLimit, EmulatorConfig, FaultAction, FaultRule, LatencyProfile, RunningEmulator,
    ThrottleLimits,
};

const SUB: &str = "11111111-1111-1111-1111-111111111111";
const NET: &str = "2024-05-01";

fn rg() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg")
}

fn nsg(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/{name}",
        rg()
    )
}

fn client_with(emulator: &RunningEmulator, credential: CredentialConfig) -> ArmClient {
    client_metered(emulator, credential, ArmMetrics::default())
}

fn client_metered(
    emulator: &RunningEmulator,
    credential: CredentialConfig,
    metrics: ArmMetrics,
) -> ArmClient {
    let mut config =
        ArmConfig::for_endpoint(&emulator.url(), "https://management.azure.com/.default");
    config.min_poll_interval = Duration::from_millis(10);
    config.max_retry_delay = Duration::from_secs(5);
    let tokens = TokenSource::new(credential.build().unwrap(), config.scope.clone());
    ArmClient::new(config, tokens, metrics).unwrap()
}

fn client(emulator: &RunningEmulator) -> ArmClient {
    client_with(emulator, CredentialConfig::Static("token".into()))
}

async fn setup(config: EmulatorConfig) -> (RunningEmulator, ArmClient) {
    let emulator = RunningEmulator::start(config).await.unwrap();
    let arm = client(&emulator);
    arm.put(
        &rg(),
        "2024-03-01",
        &json!({ "location": "westeurope" }),
        None,
    )
    .await
    .unwrap();
    (emulator, arm)
}

fn nsg_body(rules: Value) -> Value {
    json!({ "location": "westeurope", "properties": { "securityRules": rules } })
}

fn deny_all() -> Value {
    json!([{ "name": "DenyAllInbound", "properties": { "priority": 4096, "direction": "Inbound", "access": "Deny", "protocol": "*",
        "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*" } }])
}

async fn finish(arm: &ArmClient, outcome: ApplyOutcome) {
    if let ApplyOutcome::Written {
        outcome: PutOutcome::Started(state),
        ..
    } = outcome
    {
        arm.wait(&state).await.unwrap();
    }
}

#[tokio::test]
async fn a_second_identical_apply_costs_one_get_and_no_put() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    let first = arm
        .apply(&nsg("n"), NET, &nsg_body(deny_all()))
        .await
        .unwrap();
    assert!(
        matches!(
            first,
            ApplyOutcome::Written {
                difference: None,
                outcome: PutOutcome::Started(_)
            }
        ),
        "{first:?}"
    );
    finish(&arm, first).await;
    let before = emulator.stats();
    let second = arm
        .apply(&nsg("n"), NET, &nsg_body(deny_all()))
        .await
        .unwrap();
    assert!(matches!(second, ApplyOutcome::Unchanged(_)), "{second:?}");
    let after = emulator.stats();
    assert_eq!(
        after.by_method.get("GET").copied().unwrap_or(0)
            - before.by_method.get("GET").copied().unwrap_or(0),
        1
    );
    assert_eq!(
        after.by_method.get("PUT"),
        before.by_method.get("PUT"),
        "no write for an unchanged resource"
    );
}

#[tokio::test]
async fn drift_is_detected_and_written_back_with_if_match() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    finish(
        &arm,
        arm.apply(&nsg("n"), NET, &nsg_body(deny_all()))
            .await
            .unwrap(),
    )
    .await;
    emulator.mutate(&nsg("n"), |body| {
        body["properties"]["securityRules"] = json!([])
    });
    let repaired = arm
        .apply(&nsg("n"), NET, &nsg_body(deny_all()))
        .await
        .unwrap();
    match &repaired {
        ApplyOutcome::Written {
            difference: Some(path),
            ..
        } => assert_eq!(path, "properties.securityRules"),
        other => panic!("expected a repair, got {other:?}"),
    }
    finish(&arm, repaired).await;
    let live = arm.get(&nsg("n"), NET).await.unwrap().unwrap();
    assert_eq!(
        live.body["properties"]["securityRules"][0]["name"],
        "DenyAllInbound"
    );
}

#[tokio::test]
async fn a_stale_etag_is_a_precondition_failure() {
    let (_emulator, arm) = setup(EmulatorConfig::default()).await;
    if let PutOutcome::Started(s) = arm
        .put(&nsg("n"), NET, &nsg_body(json!([])), None)
        .await
        .unwrap()
    {
        arm.wait(&s).await.unwrap();
    }
    let err = arm
        .put(&nsg("n"), NET, &nsg_body(json!([])), Some("W/\"stale\""))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::PreconditionFailed);
}

#[tokio::test]
async fn failed_operations_report_arm_s_error() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    emulator.add_fault(
        FaultRule::new(FaultAction::FailOperation {
            code: "InternalServerError".into(),
        })
        .method("PUT")
        .times(1),
    );
    let PutOutcome::Started(state) = arm
        .put(&nsg("n"), NET, &nsg_body(json!([])), None)
        .await
        .unwrap()
    else {
        panic!("expected an operation")
    };
    match arm.wait(&state).await.unwrap_err() {
        AzureError::OperationFailed { code, .. } => assert_eq!(code, "InternalServerError"),
        other => panic!("{other:?}"),
    }
    // The failed resource is written again on the next apply even though its body matches.
    let again = arm
        .apply(&nsg("n"), NET, &nsg_body(json!([])))
        .await
        .unwrap();
    assert!(matches!(again, ApplyOutcome::Written { .. }), "{again:?}");
}

#[tokio::test]
async fn an_operation_survives_a_restart_as_serialised_state() {
    let (emulator, arm) = setup(EmulatorConfig {
        latency: LatencyProfile::realistic(0.05),
        ..Default::default()
    })
    .await;
    let PutOutcome::Started(state) = arm
        .put(&nsg("n"), NET, &nsg_body(json!([])), None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let persisted = serde_json::to_string(&state).unwrap();
    drop(arm); // the operator restarts
    let restored: LroState = serde_json::from_str(&persisted).unwrap();
    assert_eq!(restored, state);
    let fresh = client(&emulator);
    assert!(matches!(
        fresh.poll(&restored).await.unwrap(),
        LroStatus::Running(_)
    ));
    fresh.wait(&restored).await.unwrap();
    assert_eq!(
        fresh
            .get(&nsg("n"), NET)
            .await
            .unwrap()
            .unwrap()
            .provisioning_state(),
        Some("Succeeded")
    );
    let puts = emulator.stats().by_method.get("PUT").copied().unwrap_or(0);
    assert_eq!(
        puts, 2,
        "the group and the NSG were each written once; resuming did not write again"
    );
}

#[tokio::test]
async fn deletes_follow_location_and_missing_counts_as_gone() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    finish(
        &arm,
        arm.apply(&nsg("n"), NET, &nsg_body(json!([])))
            .await
            .unwrap(),
    )
    .await;
    let DeleteOutcome::Started(state) = arm.delete(&nsg("n"), NET).await.unwrap() else {
        panic!()
    };
    arm.wait(&state).await.unwrap();
    assert!(arm.get(&nsg("n"), NET).await.unwrap().is_none());
    assert_eq!(
        arm.delete(&nsg("n"), NET).await.unwrap(),
        DeleteOutcome::Gone
    );
    let DeleteOutcome::Started(group) = arm.delete(&rg(), "2024-03-01").await.unwrap() else {
        panic!()
    };
    assert_eq!(group.style, PollStyle::Location);
    arm.wait(&group).await.unwrap();
    assert!(emulator.inventory().is_empty());
}

#[tokio::test]
async fn another_operation_in_progress_is_a_retryable_conflict() {
    let (_emulator, arm) = setup(EmulatorConfig {
        latency: LatencyProfile::realistic(0.05),
        ..Default::default()
    })
    .await;
    let vnet = format!("{}/providers/Microsoft.Network/virtualNetworks/v", rg());
    let body = json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } });
    let PutOutcome::Started(state) = arm.put(&vnet, NET, &body, None).await.unwrap() else {
        panic!()
    };
    let err = arm
        .put(
            &format!("{vnet}/subnets/a"),
            NET,
            &json!({ "properties": { "addressPrefix": "10.0.1.0/24" } }),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ConflictRetryable);
    match err {
        AzureError::Arm(e) => {
            assert_eq!(e.code, "AnotherOperationInProgress");
            assert!(e.request_id.is_some(), "ARM's request id is kept for logs");
        }
        other => panic!("{other:?}"),
    }
    arm.wait(&state).await.unwrap();
}

/// An emulator throttling at `limits` and a client whose budget mirrors them.
async fn mirrored(limits: ThrottleLimits) -> (RunningEmulator, ArmClient) {
    let emulator = RunningEmulator::start(EmulatorConfig {
        throttle: limits,
        ..Default::default()
    })
    .await
    .unwrap();
    let pair = |b: BucketLimit| (b.capacity, b.refill_per_second);
    let mut config = ArmConfig::for_endpoint(&emulator.url(), "scope");
    config.budget = BudgetLimits {
        reads: pair(limits.reads),
        writes: pair(limits.writes),
        deletes: pair(limits.deletes),
    };
    let tokens = TokenSource::new(
        CredentialConfig::Static("t".into()).build().unwrap(),
        "scope",
    );
    let arm = ArmClient::new(config, tokens, ArmMetrics::default()).unwrap();
    (emulator, arm)
}

#[tokio::test]
async fn a_client_that_mirrors_the_budget_is_never_throttled() {
    let reads = BucketLimit {
        capacity: 3.0,
        refill_per_second: 20.0,
    };
    let limits = ThrottleLimits {
        reads,
        ..ThrottleLimits::default()
    };
    let (emulator, arm) = mirrored(limits).await;
    let arm = std::sync::Arc::new(arm);
    // Each side makes its bucket at its first sight of a request, the client a moment before
    // ARM: one request, then time for both to fill, so they start the burst alike.
    arm.get(&nsg("warm-up"), NET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let arm = arm.clone();
            tokio::spawn(async move { arm.get(&nsg(&format!("n{i}")), NET).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(
        emulator.stats().throttled,
        0,
        "the client waited for its own bucket instead of earning 429s"
    );
    assert_eq!(emulator.stats().requests, 13);
}

/// Work waiting for room to start, at a fixed priority.
struct Waiting(u32);

impl Contenders for Waiting {
    fn most_urgent(&self) -> Option<u32> {
        Some(self.0)
    }
}

/// A write at `priority`, patient for ten seconds, making way for work waiting at `waiting`.
async fn put_beside(
    arm: &ArmClient,
    name: &str,
    priority: u32,
    waiting: u32,
) -> Result<PutOutcome, AzureError> {
    let (id, body) = (nsg(name), nsg_body(json!([])));
    let put = arm.put(&id, NET, &body, None);
    let patient = with_patience(
        Duration::from_secs(10),
        yielding_to(std::sync::Arc::new(Waiting(waiting)), put),
    );
    with_priority(priority, patient).await
}

#[tokio::test]
async fn a_write_that_would_wait_makes_way_for_more_urgent_work_waiting_to_start() {
    let writes = BucketLimit {
        capacity: 3.0,
        refill_per_second: 2.0,
    };
    let limits = ThrottleLimits {
        writes,
        ..ThrottleLimits::default()
    };
    let (emulator, arm) = mirrored(limits).await;
    arm.put(
        &rg(),
        "2024-03-01",
        &json!({ "location": "westeurope" }),
        None,
    )
    .await
    .unwrap();
    // A full bucket: a write that need not wait goes, however urgent what waits.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(put_beside(&arm, "free", 10, 500).await.is_ok());
    assert!(put_beside(&arm, "spends-the-rest", 10, 500).await.is_ok());
    // An empty one: the write gives way at once, unsent, though its patience would let it wait.
    let sent = emulator.stats().requests;
    let started = std::time::Instant::now();
    let deferred = put_beside(&arm, "gives-way", 10, 500).await;
    assert!(
        matches!(deferred, Err(AzureError::Deferred(_))),
        "{deferred:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "it waited {:?}",
        started.elapsed()
    );
    assert_eq!(emulator.stats().requests, sent, "a deferred write was sent");
    // What waits is less urgent than this write: it waits for its token and goes.
    let waited = put_beside(&arm, "outranks", 400, 300).await;
    assert!(waited.is_ok(), "{waited:?}");
    assert_eq!(emulator.stats().throttled, 0);
}

/// A GET of NSG `first` answered `429 code` with `Retry-After: seconds` (it goes on, retrying,
/// in the task returned), then a PUT of NSG `other`: how long the PUT took.
async fn a_write_after_a_429(
    code: &str,
    seconds: u64,
) -> (
    RunningEmulator,
    tokio::task::JoinHandle<Result<Option<LiveResource>, AzureError>>,
    Duration,
) {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    let arm = std::sync::Arc::new(arm);
    let first = first_get_answered_429(&emulator, &arm, code, seconds).await;
    let started = std::time::Instant::now();
    let other = arm
        .put(&nsg("other"), NET, &nsg_body(json!([])), None)
        .await;
    assert!(other.is_ok(), "{other:?}");
    (emulator, first, started.elapsed())
}

/// Starts a GET of NSG `first` that the emulator answers `429 code` with `Retry-After:
/// seconds`, and waits until it has been so answered; the GET goes on (retrying) in the task.
async fn first_get_answered_429(
    emulator: &RunningEmulator,
    arm: &std::sync::Arc<ArmClient>,
    code: &str,
    seconds: u64,
) -> tokio::task::JoinHandle<Result<Option<LiveResource>, AzureError>> {
    emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 429,
            code: code.into(),
            retry_after_seconds: Some(seconds),
        })
        .method("GET")
        .times(1),
    );
    let first = {
        let arm = arm.clone();
        tokio::spawn(async move { arm.get(&nsg("first"), NET).await })
    };
    while !emulator.requests().iter().any(|r| r.status == 429) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first
}

#[tokio::test]
async fn a_429_opens_the_breaker_for_the_whole_subscription() {
    // Another caller, another resource, another class: it waits out the Retry-After too.
    let (emulator, first, took) = a_write_after_a_429("SubscriptionRequestsThrottled", 1).await;
    assert!(
        took >= Duration::from_millis(500),
        "the write went out during the breaker window"
    );
    assert!(
        first.await.unwrap().unwrap().is_none(),
        "the throttled read was retried after Retry-After"
    );
    assert_eq!(emulator.stats().throttled, 1);
}

/// A `429` whose code is `RetryableError` is Azure's answer for one resource that cannot take
/// the request yet (a resource it references is still being updated), not the subscription's
/// throttling: only that request waits and is retried; nothing else pauses.
#[tokio::test]
async fn a_429_retryable_error_holds_back_its_own_request_only() {
    let (_emulator, first, took) = a_write_after_a_429("RetryableError", 4).await;
    assert!(
        took < Duration::from_secs(2),
        "another resource's write waited out the 4 s meant for the first"
    );
    assert!(
        first.await.unwrap().unwrap().is_none(),
        "the held request was retried after its Retry-After"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_client_request_id_is_sent() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 503,
            code: "ServiceUnavailable".into(),
            retry_after_seconds: Some(0),
        })
        .method("GET")
        .times(2),
    );
    emulator.add_fault(
        FaultRule::new(FaultAction::DropConnection)
            .method("GET")
            .times(1),
    );
    assert!(arm.get(&nsg("n"), NET).await.unwrap().is_none());
    let log = emulator.requests();
    assert!(
        log.iter().all(|r| r.client_request_id.is_some()),
        "x-ms-client-request-id on every request"
    );
    let ids: std::collections::BTreeSet<_> = log
        .iter()
        .filter_map(|r| r.client_request_id.clone())
        .collect();
    assert_eq!(ids.len(), log.len(), "a fresh id per request");
    // Terminal errors are not retried.
    emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 403,
            code: "AuthorizationFailed".into(),
            retry_after_seconds: None,
        })
        .method("GET")
        .times(5),
    );
    let before = emulator.stats().requests;
    let err = arm.get(&nsg("n"), NET).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(emulator.stats().requests, before + 1);
}

#[tokio::test]
async fn a_rotated_token_file_is_picked_up() {
    let emulator = RunningEmulator::start(EmulatorConfig {
        token: Some("second".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "first\n").unwrap();
    let arm = client_with(
        &emulator,
        CredentialConfig::TokenFile(file.path().to_path_buf()),
    );
    let err = arm.get(&rg(), "2024-03-01").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Terminal, "401 with the old token");
    std::fs::write(file.path(), "second\n").unwrap(); // the kubelet rotates the projected token
    let answer = arm.get(&rg(), "2024-03-01").await;
    assert!(answer.is_ok(), "{answer:?}");
}

#[test]
fn token_sources_refresh_before_expiry() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "one").unwrap();
        let credential = CredentialConfig::TokenFile(file.path().to_path_buf())
            .build()
            .unwrap();
        // File tokens live five minutes; a ten-minute margin means every call refreshes.
        let eager =
            TokenSource::new(credential.clone(), "scope").with_margin(Duration::from_secs(600));
        let lazy = TokenSource::new(credential, "scope");
        assert_eq!(eager.token().await.unwrap(), "one");
        assert_eq!(lazy.token().await.unwrap(), "one");
        std::fs::write(file.path(), "two").unwrap();
        assert_eq!(eager.token().await.unwrap(), "two");
        assert_eq!(
            lazy.token().await.unwrap(),
            "one",
            "cached until close to expiry"
        );
    });
}

#[tokio::test]
async fn every_request_is_counted_in_the_metrics() {
    let emulator = RunningEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let metrics = ArmMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let arm = client_metered(&emulator, CredentialConfig::Static("t".into()), metrics);
    arm.put(
        &rg(),
        "2024-03-01",
        &json!({ "location": "westeurope" }),
        None,
    )
    .await
    .unwrap();
    arm.get(&nsg("missing"), NET).await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"arm_requests_total{method="PUT",resource_type="Microsoft.Resources/resourceGroups",status="201"} 1"#), "{text}");
    assert!(text.contains(r#"arm_requests_total{method="GET",resource_type="Microsoft.Network/networkSecurityGroups",status="404"} 1"#), "{text}");
    assert!(
        text.contains("arm_request_duration_seconds_count 2"),
        "{text}"
    );
    assert!(text.contains("arm_budget_tokens{class=\"read\"}"), "{text}");
}

/// What many objects require and another provides is read once per look: a read younger than
/// the age a caller accepts that found it answers it; one that found it missing does not (a
/// waiter woken because it appeared must see it), nor does any for a caller accepting no age.
#[tokio::test]
async fn a_recent_read_of_a_required_resource_is_shared() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    let gets = |e: &RunningEmulator| e.stats().by_method.get("GET").copied().unwrap_or(0);
    let shared = ListingAge {
        accepted: Duration::from_secs(60),
        kept: Duration::from_secs(60),
    };
    let before = gets(&emulator);
    assert!(!arm.exists_recent(&nsg("n"), NET, shared).await.unwrap());
    assert!(!arm.exists_recent(&nsg("n"), NET, shared).await.unwrap());
    assert_eq!(
        gets(&emulator) - before,
        2,
        "a missing resource is read again"
    );

    let created = arm
        .apply(&nsg("n"), NET, &nsg_body(deny_all()))
        .await
        .unwrap();
    finish(&arm, created).await;
    let before = gets(&emulator);
    assert!(arm.exists_recent(&nsg("n"), NET, shared).await.unwrap());
    assert!(arm.exists_recent(&nsg("n"), NET, shared).await.unwrap());
    assert_eq!(
        gets(&emulator) - before,
        1,
        "the second answer is the first read"
    );
    assert!(arm
        .exists_recent(&nsg("n"), NET, ListingAge::default())
        .await
        .unwrap());
    assert_eq!(gets(&emulator) - before, 2, "no age accepted: read afresh");
}

/// A loopback listener standing for a host that is not Azure: counts the connections it gets.
async fn thief() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a_poll_url_off_the_arm_endpoint_is_never_sent_the_token() {
    let (emulator, arm) = setup(EmulatorConfig::default()).await;
    let (elsewhere, hits) = thief().await;
    // What anyone allowed to patch a stamp's status could write into `status.inFlight`.
    let planted = LroState {
        resource_id: nsg("n"),
        kind: LroKind::Put,
        poll_url: format!("{elsewhere}/collect?api-version=2024-05-01"),
        style: PollStyle::AsyncOperation,
        started_at: 0,
    };
    assert!(arm.poll(&planted).await.is_err());
    assert!(arm.wait(&planted).await.is_err());
    // The same host on another scheme or port is not the endpoint either.
    let other_port = LroState {
        poll_url: emulator.url().replace("http://", "https://"),
        ..planted.clone()
    };
    assert!(arm.poll(&other_port).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let polls = emulator.stats().operation_polls;
    assert_eq!(polls, 0, "nothing was polled at all");
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_token() {
    let (elsewhere, hits) = thief().await;
    // An "ARM endpoint" that redirects every request elsewhere.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = format!("{elsewhere}/steal");
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let reply = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    let mut config = ArmConfig::for_endpoint(&endpoint, "https://management.azure.com/.default");
    config.max_attempts = 1;
    let tokens = TokenSource::new(
        CredentialConfig::Static("token".into()).build().unwrap(),
        config.scope.clone(),
    );
    let arm = ArmClient::new(config, tokens, ArmMetrics::default()).unwrap();
    assert!(arm.get(&nsg("n"), NET).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn listings_follow_next_link_through_every_page() {
    let (emulator, arm) = setup(EmulatorConfig {
        page_size: 2,
        ..Default::default()
    })
    .await;
    for name in ["a", "b", "c", "d", "e"] {
        finish(
            &arm,
            arm.apply(&nsg(name), NET, &nsg_body(json!([])))
                .await
                .unwrap(),
        )
        .await;
    }
    let before = emulator.stats().by_method.get("GET").copied().unwrap_or(0);
    let listed = arm.list_group(SUB, "rg").await.unwrap().unwrap();
    let names: Vec<&str> = listed.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let after = emulator.stats().by_method.get("GET").copied().unwrap_or(0);
    assert_eq!(
        after - before,
        3,
        "five entries at two a page are three reads"
    );

    let vnet = format!("{}/providers/Microsoft.Network/virtualNetworks/v", rg());
    let subnet = |name: &str, prefix: &str| json!({ "name": name, "properties": { "addressPrefix": prefix } });
    finish(
        &arm,
        arm.apply(
            &vnet,
            NET,
            &json!({ "location": "westeurope", "properties": {
                "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
                "subnets": [subnet("s1", "10.0.1.0/24"), subnet("s2", "10.0.2.0/24"), subnet("s3", "10.0.3.0/24")]
            } }),
        )
        .await
        .unwrap(),
    )
    .await;
    let subnets = arm
        .list_children(&vnet, "subnets", NET)
        .await
        .unwrap()
        .unwrap();
    let mut names: Vec<&str> = subnets.iter().filter_map(|e| e["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["s1", "s2", "s3"]);
    let missing = format!("{}/providers/Microsoft.Network/virtualNetworks/nope", rg());
    assert_eq!(
        arm.list_children(&missing, "subnets", NET).await.unwrap(),
        None
    );
}
