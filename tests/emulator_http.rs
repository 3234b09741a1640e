//! The ARM emulator, pinned by plain HTTP requests: ARM's status codes, headers, long-running
//! operations, throttling, conflicts, Azure's network rules, private link and private DNS,
//! fault injection and the test endpoints.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stamp_operator::emulator::{
    BucketLimit, EmulatorConfig, FaultAction, FaultRule, LatencyProfile, RetryAfter,
    RunningEmulator, ThrottleLimits,
};

const SUB: &str = "/subscriptions/11111111-1111-1111-1111-111111111111";
const NET: &str = "2024-05-01";

struct Arm {
    emulator: RunningEmulator,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl Arm {
    async fn start(config: EmulatorConfig) -> Arm {
        Arm {
            emulator: RunningEmulator::start(config).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .http
            .request(method, url)
            .header("Authorization", "Bearer test");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    fn url(&self, id: &str, api: &str) -> String {
        format!("{}{id}?api-version={api}", self.emulator.url())
    }

    async fn put(&self, id: &str, api: &str, body: Value) -> Answer {
        self.call(Method::PUT, &self.url(id, api), Some(body), &[])
            .await
    }

    async fn get(&self, id: &str, api: &str) -> Answer {
        self.call(Method::GET, &self.url(id, api), None, &[]).await
    }

    async fn delete(&self, id: &str, api: &str) -> Answer {
        self.call(Method::DELETE, &self.url(id, api), None, &[])
            .await
    }

    /// Follows `Azure-AsyncOperation` until it is no longer InProgress.
    async fn wait(&self, answer: &Answer) -> Value {
        let url = answer
            .header("azure-asyncoperation")
            .expect("Azure-AsyncOperation header");
        for _ in 0..200 {
            let poll = self.call(Method::GET, &url, None, &[]).await;
            assert_eq!(poll.status, StatusCode::OK);
            if poll.body["status"] != "InProgress" {
                return poll.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("operation never finished");
    }

    async fn put_done(&self, id: &str, api: &str, body: Value) -> Answer {
        let answer = self.put(id, api, body).await;
        assert!(
            answer.status.is_success(),
            "PUT {id}: {} {}",
            answer.status,
            answer.body
        );
        if answer.header("azure-asyncoperation").is_some() {
            assert_eq!(self.wait(&answer).await["status"], "Succeeded");
        }
        answer
    }
}

fn rg(name: &str) -> String {
    format!("{SUB}/resourceGroups/{name}")
}

fn vnet_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/virtualNetworks/{name}",
        rg("rg")
    )
}

fn nsg_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/{name}",
        rg("rg")
    )
}

fn subnet(name: &str, prefix: &str) -> Value {
    json!({ "name": name, "properties": { "addressPrefix": prefix } })
}

async fn with_group(config: EmulatorConfig) -> Arm {
    let arm = Arm::start(config).await;
    arm.put_done(&rg("rg"), "2024-03-01", json!({ "location": "westeurope" }))
        .await;
    arm
}

/// Azure's latencies × `factor`.
fn scaled(factor: f64) -> EmulatorConfig {
    EmulatorConfig {
        latency: LatencyProfile::realistic(factor),
        ..Default::default()
    }
}

fn slow() -> EmulatorConfig {
    scaled(0.05)
}

#[tokio::test]
async fn put_is_a_long_running_operation_then_get_succeeds() {
    let arm = with_group(EmulatorConfig::default()).await;
    let id = vnet_id("v1");
    let created = arm.put(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [subnet("a", "10.0.1.0/24")] } })).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["properties"]["provisioningState"], "Updating");
    assert!(created.header("retry-after").is_some());
    for header in [
        "x-ms-request-id",
        "x-ms-correlation-request-id",
        "x-ms-ratelimit-remaining-subscription-writes",
    ] {
        assert!(created.header(header).is_some(), "{header}");
    }
    assert_eq!(arm.wait(&created).await["status"], "Succeeded");
    let got = arm.get(&id, NET).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        got.body["properties"]["subnets"][0]["id"],
        format!("{id}/subnets/a")
    );
    assert!(got.header("etag").is_some());
    let again = arm.put(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } })).await;
    assert_eq!(again.status, StatusCode::OK, "a second PUT updates");
}

#[tokio::test]
async fn missing_things_answer_like_arm() {
    let arm = with_group(EmulatorConfig::default()).await;
    let missing = arm.get(&vnet_id("nope"), NET).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "ResourceNotFound");
    let no_group = arm
        .get(
            &format!(
                "{}/providers/Microsoft.Network/virtualNetworks/v",
                rg("ghost")
            ),
            NET,
        )
        .await;
    assert_eq!(no_group.code(), "ResourceGroupNotFound");
    let no_parent = arm
        .put(
            &format!("{}/subnets/s", vnet_id("nope")),
            NET,
            json!({ "properties": { "addressPrefix": "10.0.0.0/24" } }),
        )
        .await;
    assert_eq!(no_parent.code(), "ParentResourceNotFound");
    let no_version = arm
        .call(
            Method::GET,
            &format!("{}{}", arm.emulator.url(), vnet_id("v")),
            None,
            &[],
        )
        .await;
    assert_eq!(no_version.code(), "MissingApiVersionParameter");
    let gone = arm.delete(&vnet_id("nope"), NET).await;
    assert_eq!(
        gone.status,
        StatusCode::NO_CONTENT,
        "deleting what is not there is a no-op"
    );
    let unauthenticated = arm
        .http
        .get(arm.url(&vnet_id("v"), NET))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_configured_token_is_enforced() {
    let arm = Arm::start(EmulatorConfig {
        token: Some("secret".into()),
        ..Default::default()
    })
    .await;
    let wrong = arm.get(&rg("rg"), "2024-03-01").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "InvalidAuthenticationToken");
    let right = arm
        .http
        .get(arm.url(&rg("rg"), "2024-03-01"))
        .bearer_auth("secret")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn etag_mismatch_is_412() {
    let arm = with_group(EmulatorConfig::default()).await;
    let id = nsg_id("n");
    arm.put_done(&id, NET, json!({ "location": "westeurope" }))
        .await;
    let etag = arm.get(&id, NET).await.header("etag").unwrap();
    let stale = arm
        .call(
            Method::PUT,
            &arm.url(&id, NET),
            Some(json!({ "location": "westeurope" })),
            &[("If-Match", "W/\"stale\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = arm
        .call(
            Method::PUT,
            &arm.url(&id, NET),
            Some(json!({ "location": "westeurope" })),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
}

#[tokio::test]
async fn reads_beyond_the_bucket_are_throttled_with_retry_after() {
    let limits = ThrottleLimits {
        reads: BucketLimit {
            capacity: 5.0,
            refill_per_second: 0.5,
        },
        ..ThrottleLimits::default()
    };
    let arm = Arm::start(EmulatorConfig {
        throttle: limits,
        ..Default::default()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let a = arm.get(&rg("rg"), "2024-03-01").await;
        remaining.push(
            a.header("x-ms-ratelimit-remaining-subscription-reads")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
    let throttled = arm.get(&rg("rg"), "2024-03-01").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.code(), "SubscriptionRequestsThrottled");
    assert_eq!(throttled.header("retry-after").as_deref(), Some("2"));
    // Writes have their own bucket.
    assert_eq!(
        arm.put(&rg("rg"), "2024-03-01", json!({ "location": "westeurope" }))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(arm.emulator.stats().throttled, 1);
}

#[tokio::test]
async fn concurrent_writes_to_one_vnet_conflict() {
    let arm = with_group(slow()).await;
    let id = vnet_id("v");
    let first = arm.put(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } })).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let subnet_write = arm
        .put(
            &format!("{id}/subnets/a"),
            NET,
            json!({ "properties": { "addressPrefix": "10.0.1.0/24" } }),
        )
        .await;
    assert_eq!(subnet_write.status, StatusCode::CONFLICT);
    assert_eq!(subnet_write.code(), "AnotherOperationInProgress");
    arm.wait(&first).await;
    assert!(arm
        .put(
            &format!("{id}/subnets/a"),
            NET,
            json!({ "properties": { "addressPrefix": "10.0.1.0/24" } })
        )
        .await
        .status
        .is_success());
}

#[tokio::test]
async fn azure_subnet_rules_are_enforced() {
    let arm = with_group(EmulatorConfig::default()).await;
    let space = json!({ "addressPrefixes": ["10.0.0.0/16"] });
    let cases = [
        (
            vec![subnet("AzureFirewallSubnet", "10.0.0.0/27")],
            "SubnetPrefixTooSmall",
        ),
        (
            vec![subnet("AzureBastionSubnet", "10.0.0.0/27")],
            "SubnetPrefixTooSmall",
        ),
        (vec![subnet("a", "10.0.0.1/24")], "InvalidCIDRNotation"),
        (vec![subnet("a", "10.9.0.0/24")], "NetcfgInvalidSubnet"),
        (
            vec![subnet("a", "10.0.0.0/24"), subnet("b", "10.0.0.128/25")],
            "NetcfgSubnetRangesOverlap",
        ),
    ];
    for (subnets, code) in cases {
        let answer = arm.put(&vnet_id("bad"), NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": subnets } })).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(answer.code(), code, "{}", answer.body);
    }
    // No NSG on AzureFirewallSubnet; a Bastion NSG must carry Bastion's rules.
    let nsg = nsg_id("plain");
    arm.put_done(
        &nsg,
        NET,
        json!({ "location": "westeurope", "properties": { "securityRules": [] } }),
    )
    .await;
    let with_nsg = |name: &str| json!({ "name": name, "properties": { "addressPrefix": "10.0.0.0/26", "networkSecurityGroup": { "id": nsg } } });
    let fw = arm.put(&vnet_id("bad"), NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [with_nsg("AzureFirewallSubnet")] } })).await;
    assert_eq!(fw.code(), "NsgNotAllowedOnAzureFirewallSubnet");
    let bastion = arm.put(&vnet_id("bad"), NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [with_nsg("AzureBastionSubnet")] } })).await;
    assert_eq!(
        bastion.code(),
        "NetworkSecurityGroupNotCompliantForAzureBastionSubnet"
    );
    let dangling = json!({ "name": "a", "properties": { "addressPrefix": "10.0.0.0/24", "routeTable": { "id": format!("{}/providers/Microsoft.Network/routeTables/ghost", rg("rg")) } } });
    let answer = arm.put(&vnet_id("bad"), NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [dangling] } })).await;
    assert_eq!(answer.code(), "InvalidResourceReference");
    assert!(
        arm.get(&vnet_id("bad"), NET).await.status == StatusCode::NOT_FOUND,
        "refused writes change nothing"
    );
}

#[tokio::test]
async fn omitted_subnets_are_kept_or_deleted_by_api_version() {
    let arm = with_group(EmulatorConfig::default()).await;
    let id = vnet_id("v");
    let space = json!({ "addressPrefixes": ["10.0.0.0/16"] });
    arm.put_done(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [subnet("a", "10.0.1.0/24")] } })).await;
    arm.put_done(
        &id,
        NET,
        json!({ "location": "westeurope", "properties": { "addressSpace": space } }),
    )
    .await;
    assert_eq!(
        arm.get(&id, NET).await.body["properties"]["subnets"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "2024-05-01 keeps omitted subnets"
    );
    arm.put_done(
        &id,
        "2023-05-01",
        json!({ "location": "westeurope", "properties": { "addressSpace": space } }),
    )
    .await;
    assert_eq!(
        arm.get(&id, NET).await.body["properties"]["subnets"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "older api-versions delete them"
    );
    arm.put_done(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [subnet("a", "10.0.1.0/24")] } })).await;
    arm.put_done(
        &id,
        NET,
        json!({ "location": "westeurope", "properties": { "addressSpace": space, "subnets": [] } }),
    )
    .await;
    assert_eq!(
        arm.get(&id, NET).await.body["properties"]["subnets"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "an explicit [] deletes them"
    );
}

#[tokio::test]
async fn a_subnet_put_replaces_the_whole_subnet() {
    let arm = with_group(EmulatorConfig::default()).await;
    let nsg = nsg_id("n");
    arm.put_done(&nsg, NET, json!({ "location": "westeurope" }))
        .await;
    let id = vnet_id("v");
    let attached = json!({ "name": "a", "properties": { "addressPrefix": "10.0.1.0/24", "networkSecurityGroup": { "id": nsg } } });
    arm.put_done(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [attached] } })).await;
    arm.put_done(
        &format!("{id}/subnets/a"),
        NET,
        json!({ "properties": { "addressPrefix": "10.0.1.0/24" } }),
    )
    .await;
    let got = arm.get(&format!("{id}/subnets/a"), NET).await;
    assert!(
        got.body["properties"].get("networkSecurityGroup").is_none(),
        "omitting the NSG detaches it: {}",
        got.body
    );
}

/// A stamp-like network: VNet with PE and PLS subnets, a seeded Key Vault and AKS load balancer.
async fn network_with_targets(arm: &Arm) -> (String, String, String) {
    let id = vnet_id("v");
    let subnets = json!([
        { "name": "pe", "properties": { "addressPrefix": "10.0.1.0/27", "privateEndpointNetworkPolicies": "Enabled" } },
        { "name": "ingress", "properties": { "addressPrefix": "10.0.2.0/28", "privateLinkServiceNetworkPolicies": "Disabled" } },
    ]);
    arm.put_done(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": subnets } })).await;
    let vault = format!("{}/providers/Microsoft.KeyVault/vaults/kv1", rg("rg"));
    arm.put_done(
        &vault,
        "2023-07-01",
        json!({ "location": "westeurope", "properties": {} }),
    )
    .await;
    let lb = format!(
        "{}/providers/Microsoft.Network/loadBalancers/kubernetes-internal",
        rg("rg")
    );
    arm.put_done(&lb, NET, json!({ "location": "westeurope", "properties": { "frontendIPConfigurations": [{ "name": "fe", "properties": { "privateIPAddress": "10.0.2.4", "subnet": { "id": format!("{id}/subnets/ingress") } } }] } })).await;
    (id, vault, format!("{lb}/frontendIPConfigurations/fe"))
}

#[tokio::test]
async fn private_endpoints_get_ips_from_the_subnet_and_dns_records() {
    let arm = with_group(EmulatorConfig::default()).await;
    let (vnet, vault, _) = network_with_targets(&arm).await;
    let zone = format!(
        "{}/providers/Microsoft.Network/privateDnsZones/privatelink.vaultcore.azure.net",
        rg("rg")
    );
    let accepted = arm
        .put(&zone, "2024-06-01", json!({ "location": "global" }))
        .await;
    assert_eq!(
        accepted.status,
        StatusCode::ACCEPTED,
        "private DNS answers 202"
    );
    let location = accepted.header("location").unwrap();
    let mut polled = arm.call(Method::GET, &location, None, &[]).await;
    for _ in 0..50 {
        if polled.status != StatusCode::ACCEPTED {
            break;
        }
        polled = arm.call(Method::GET, &location, None, &[]).await;
    }
    assert_eq!(polled.status, StatusCode::OK);
    let pe = format!(
        "{}/providers/Microsoft.Network/privateEndpoints/pe-kv",
        rg("rg")
    );
    let body = json!({ "location": "westeurope", "properties": { "subnet": { "id": format!("{vnet}/subnets/pe") }, "privateLinkServiceConnections": [{ "name": "kv", "properties": { "privateLinkServiceId": vault, "groupIds": ["vault"] } }] } });
    arm.put_done(&pe, NET, body).await;
    let got = arm.get(&pe, NET).await.body;
    assert_eq!(
        got["properties"]["customDnsConfigs"][0]["ipAddresses"][0], "10.0.1.4",
        "first usable address after Azure's reserved ones"
    );
    assert_eq!(
        got["properties"]["privateLinkServiceConnections"][0]["properties"]
            ["privateLinkServiceConnectionState"]["status"],
        "Approved"
    );
    arm.put_done(&format!("{pe}/privateDnsZoneGroups/default"), NET, json!({ "properties": { "privateDnsZoneConfigs": [{ "name": "kv", "properties": { "privateDnsZoneId": zone } }] } })).await;
    let record = arm.get(&format!("{zone}/A/kv1"), "2024-06-01").await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(
        record.body["properties"]["aRecords"][0]["ipv4Address"],
        "10.0.1.4"
    );
    // With the zone group mapping its names, the endpoint's customDnsConfigs are empty (by
    // default; see EmulatorConfig::keep_custom_dns_configs) and the zone group's recordSets
    // carry the address.
    assert_eq!(
        arm.get(&pe, NET).await.body["properties"]["customDnsConfigs"],
        json!([])
    );
    let group = arm
        .get(&format!("{pe}/privateDnsZoneGroups/default"), NET)
        .await
        .body;
    assert_eq!(
        group["properties"]["privateDnsZoneConfigs"][0]["properties"]["recordSets"][0]
            ["ipAddresses"][0],
        "10.0.1.4"
    );
    // The subnet is in use now.
    let refused = arm.delete(&format!("{vnet}/subnets/pe"), NET).await;
    assert_eq!(refused.code(), "InUseSubnetCannotBeDeleted");
    // Deleting the endpoint removes its records and frees the address.
    let deleting = arm.delete(&pe, NET).await;
    assert_eq!(deleting.status, StatusCode::ACCEPTED);
    assert!(deleting.header("location").is_some());
    arm.wait(&deleting).await;
    assert_eq!(arm.get(&pe, NET).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        arm.get(&format!("{zone}/A/kv1"), "2024-06-01").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(arm
        .delete(&format!("{vnet}/subnets/pe"), NET)
        .await
        .status
        .is_success());
}

#[tokio::test]
async fn front_door_origins_create_pending_connections_that_approval_flips() {
    // Front Door's request reaches the service 2 s after the origin is written; the origin's
    // own write takes 0.6 s.
    let arm = with_group(EmulatorConfig {
        latency: LatencyProfile::realistic(0.005),
        front_door_request_seconds: 400.0,
        ..Default::default()
    })
    .await;
    let (vnet, _, frontend) = network_with_targets(&arm).await;
    let pls = format!(
        "{}/providers/Microsoft.Network/privateLinkServices/pls",
        rg("rg")
    );
    let pls_body = json!({ "location": "westeurope", "properties": {
        "loadBalancerFrontendIpConfigurations": [{ "id": frontend }],
        "ipConfigurations": [{ "name": "nat", "properties": { "subnet": { "id": format!("{vnet}/subnets/ingress") }, "privateIPAllocationMethod": "Dynamic" } }] } });
    arm.put_done(&pls, NET, pls_body).await;
    let alias = arm.get(&pls, NET).await.body["properties"]["alias"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(alias.starts_with("pls.") && alias.ends_with(".azure.privatelinkservice"));
    let profile = format!("{}/providers/Microsoft.Cdn/profiles/afd", rg("rg"));
    arm.put_done(
        &profile,
        "2024-09-01",
        json!({ "location": "Global", "sku": { "name": "Premium_AzureFrontDoor" } }),
    )
    .await;
    arm.put_done(
        &format!("{profile}/originGroups/og"),
        "2024-09-01",
        json!({ "properties": {} }),
    )
    .await;
    let origin = format!("{profile}/originGroups/og/origins/stamp1");
    let origin_body = json!({ "properties": { "hostName": "10.0.2.4", "sharedPrivateLinkResource": { "privateLink": { "id": pls }, "privateLinkLocation": "westeurope", "requestMessage": "hello from prod" } } });
    arm.put_done(&origin, "2024-09-01", origin_body.clone())
        .await;
    let connections = || async {
        arm.get(&pls, NET).await.body["properties"]["privateEndpointConnections"].clone()
    };
    assert_eq!(
        connections().await.as_array().unwrap().len(),
        0,
        "the request showed the moment the origin was written"
    );
    // Written again while the request is on its way: still one request.
    arm.put_done(&origin, "2024-09-01", origin_body.clone())
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let connections = connections().await;
    assert_eq!(connections.as_array().unwrap().len(), 1);
    let state = &connections[0]["properties"]["privateLinkServiceConnectionState"];
    assert_eq!(state["status"], "Pending");
    assert_eq!(state["description"], "hello from prod");
    assert_eq!(
        arm.get(&origin, "2024-09-01").await.body["properties"]["sharedPrivateLinkResource"]
            ["status"],
        "Pending"
    );
    // Re-applying the origin does not open a second connection.
    arm.put_done(&origin, "2024-09-01", origin_body).await;
    assert_eq!(
        arm.get(&pls, NET).await.body["properties"]["privateEndpointConnections"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let connection_id = connections[0]["id"].as_str().unwrap().to_string();
    arm.put_done(&connection_id, NET, json!({ "properties": { "privateLinkServiceConnectionState": { "status": "Approved", "description": "approved by stamp-operator" } } })).await;
    assert_eq!(
        arm.get(&origin, "2024-09-01").await.body["properties"]["sharedPrivateLinkResource"]
            ["status"],
        "Approved"
    );
}

/// The id and body of a private link service `pls` on `frontend`, taking its NAT address in
/// `subnet`.
fn private_link_service(frontend: &str, subnet: &str) -> (String, Value) {
    let id = format!(
        "{}/providers/Microsoft.Network/privateLinkServices/pls",
        rg("rg")
    );
    let body = json!({ "location": "westeurope", "properties": { "loadBalancerFrontendIpConfigurations": [{ "id": frontend }], "ipConfigurations": [{ "name": "nat", "properties": { "subnet": { "id": subnet } } }] } });
    (id, body)
}

#[tokio::test]
async fn pls_subnets_need_network_policies_disabled() {
    let arm = with_group(EmulatorConfig::default()).await;
    let (vnet, _, frontend) = network_with_targets(&arm).await;
    let (pls, body) = private_link_service(&frontend, &format!("{vnet}/subnets/pe"));
    let answer = arm.put(&pls, NET, body).await;
    assert_eq!(
        answer.code(),
        "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet"
    );
}

/// A VNet `v` with an AzureFirewallSubnet and a Standard public IP `pip`: their ids.
async fn firewall_network(arm: &Arm) -> (String, String) {
    let id = vnet_id("v");
    arm.put_done(&id, NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [subnet("AzureFirewallSubnet", "10.0.8.128/26")] } })).await;
    let pip = format!(
        "{}/providers/Microsoft.Network/publicIPAddresses/pip",
        rg("rg")
    );
    arm.put_done(
        &pip,
        NET,
        json!({ "location": "westeurope", "sku": { "name": "Standard" } }),
    )
    .await;
    (id, pip)
}

#[tokio::test]
async fn firewalls_take_the_first_address_of_their_subnet() {
    let arm = with_group(EmulatorConfig::default()).await;
    let (id, pip) = firewall_network(&arm).await;
    let fw = format!("{}/providers/Microsoft.Network/azureFirewalls/fw", rg("rg"));
    let body = json!({ "location": "westeurope", "properties": { "ipConfigurations": [{ "name": "c", "properties": { "subnet": { "id": format!("{id}/subnets/AzureFirewallSubnet") }, "publicIPAddress": { "id": pip } } }] } });
    arm.put_done(&fw, NET, body).await;
    let got = arm.get(&fw, NET).await.body;
    assert_eq!(
        got["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
        "10.0.8.132"
    );
    assert_eq!(
        arm.delete(&pip, NET).await.code(),
        "PublicIPAddressCannotBeDeleted"
    );
}

#[tokio::test]
async fn deleting_a_group_deletes_what_it_holds() {
    let arm = with_group(EmulatorConfig::default()).await;
    network_with_targets(&arm).await;
    assert!(arm.emulator.inventory().len() > 3);
    let deleting = arm.delete(&rg("rg"), "2024-03-01").await;
    assert_eq!(deleting.status, StatusCode::ACCEPTED);
    let location = deleting.header("location").unwrap();
    let mut done = arm.call(Method::GET, &location, None, &[]).await;
    for _ in 0..50 {
        if done.status != StatusCode::ACCEPTED {
            break;
        }
        done = arm.call(Method::GET, &location, None, &[]).await;
    }
    assert_eq!(done.status, StatusCode::NO_CONTENT);
    assert!(
        arm.emulator.inventory().is_empty(),
        "{:?}",
        arm.emulator.inventory()
    );
}

#[tokio::test]
async fn faults_are_injected_as_configured() {
    let arm = with_group(EmulatorConfig::default()).await;
    let nsg = nsg_id("n");
    arm.emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 503,
            code: "ServiceUnavailable".into(),
            retry_after_seconds: Some(3),
        })
        .method("PUT")
        .times(2),
    );
    for _ in 0..2 {
        let answer = arm
            .put(&nsg, NET, json!({ "location": "westeurope" }))
            .await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.header("retry-after").as_deref(), Some("3"));
    }
    assert!(
        arm.put(&nsg, NET, json!({ "location": "westeurope" }))
            .await
            .status
            .is_success(),
        "the rule retires after 2 uses"
    );

    arm.emulator.add_fault(
        FaultRule::new(FaultAction::FailOperation {
            code: "InternalServerError".into(),
        })
        .resource_type("Microsoft.Network/routeTables")
        .times(1),
    );
    let rt = format!("{}/providers/Microsoft.Network/routeTables/rt", rg("rg"));
    let answer = arm.put(&rt, NET, json!({ "location": "westeurope" })).await;
    let status = arm.wait(&answer).await;
    assert_eq!(status["status"], "Failed");
    assert_eq!(status["error"]["code"], "InternalServerError");
    assert_eq!(
        arm.get(&rt, NET).await.body["properties"]["provisioningState"],
        "Failed"
    );

    arm.emulator.add_fault(
        FaultRule::new(FaultAction::DropConnection)
            .method("GET")
            .times(1),
    );
    assert!(
        arm.http
            .get(arm.url(&rt, NET))
            .bearer_auth("t")
            .send()
            .await
            .is_err(),
        "the connection is dropped"
    );
    arm.emulator.clear_faults();
    assert_eq!(arm.get(&rt, NET).await.status, StatusCode::OK);
}

#[tokio::test]
async fn test_endpoints_report_stats_inventory_and_accept_faults() {
    let arm = with_group(EmulatorConfig::default()).await;
    arm.get(&rg("rg"), "2024-03-01").await;
    let stats: Value = arm
        .http
        .get(format!("{}/_emulator/stats", arm.emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["byMethod"]["GET"], 1);
    assert_eq!(stats["byMethod"]["PUT"], 1);
    let inventory: Value = arm
        .http
        .get(format!("{}/_emulator/resources", arm.emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inventory["value"][0]["id"], rg("rg"));
    let fault = json!({ "method": "GET", "action": { "kind": "status", "status": 500, "code": "InternalServerError" }, "times": 1 });
    let added = arm
        .http
        .post(format!("{}/_emulator/faults", arm.emulator.url()))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        arm.get(&rg("rg"), "2024-03-01").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let listing = arm
        .get(&format!("{}/resources", rg("rg")), "2024-03-01")
        .await;
    assert_eq!(listing.status, StatusCode::OK);
    assert!(listing.body["value"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn out_of_band_changes_are_visible_and_change_the_etag() {
    let arm = with_group(EmulatorConfig::default()).await;
    let nsg = nsg_id("n");
    arm.put_done(
        &nsg,
        NET,
        json!({ "location": "westeurope", "properties": { "securityRules": [] } }),
    )
    .await;
    let before = arm.get(&nsg, NET).await.header("etag");
    assert!(arm.emulator.mutate(&nsg, |body| body["properties"]["securityRules"] = json!([{ "name": "open", "properties": { "priority": 100, "access": "Allow", "direction": "Inbound" } }])));
    let after = arm.get(&nsg, NET).await;
    assert_ne!(after.header("etag"), before);
    assert_eq!(after.body["properties"]["securityRules"][0]["name"], "open");
    assert!(arm.emulator.remove(&nsg));
    assert_eq!(arm.get(&nsg, NET).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn front_door_refuses_a_51st_origin_in_one_origin_group() {
    let arm = with_group(EmulatorConfig::default()).await;
    let profile = format!("{}/providers/Microsoft.Cdn/profiles/afd", rg("rg"));
    arm.put_done(
        &profile,
        "2024-09-01",
        json!({ "location": "Global", "sku": { "name": "Premium_AzureFrontDoor" } }),
    )
    .await;
    arm.put_done(
        &format!("{profile}/originGroups/og"),
        "2024-09-01",
        json!({ "properties": {} }),
    )
    .await;
    let origin = |i: usize| format!("{profile}/originGroups/og/origins/o{i}");
    let body = json!({ "properties": { "hostName": "origin.example.com" } });
    for i in 0..50 {
        arm.put_done(&origin(i), "2024-09-01", body.clone()).await;
    }
    let refused = arm.put(&origin(50), "2024-09-01", body.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum of 50 origins"));
    // Updating one of the fifty is still fine.
    arm.put_done(&origin(7), "2024-09-01", body).await;
}

#[tokio::test]
async fn a_subnet_a_private_link_service_uses_cannot_enable_its_policies() {
    let arm = with_group(EmulatorConfig::default()).await;
    let (vnet, _, frontend) = network_with_targets(&arm).await;
    let (pls, body) = private_link_service(&frontend, &format!("{vnet}/subnets/ingress"));
    arm.put_done(&pls, NET, body).await;
    let enable = |prefix: &str| json!({ "properties": { "addressPrefix": prefix, "privateLinkServiceNetworkPolicies": "Enabled" } });
    let used = arm
        .put(
            &format!("{vnet}/subnets/ingress"),
            NET,
            enable("10.0.2.0/28"),
        )
        .await;
    assert_eq!(
        used.code(),
        "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet"
    );
    let unused = arm
        .put(&format!("{vnet}/subnets/pe"), NET, enable("10.0.1.0/27"))
        .await;
    assert!(unused.status.is_success(), "{}", unused.body);
}

#[tokio::test]
async fn the_nsg_of_a_bastion_subnet_keeps_bastions_rules() {
    let arm = with_group(EmulatorConfig::default()).await;
    let nsg = nsg_id("bastion");
    let allow_all = |name: &str, direction: &str| json!({ "name": name, "properties": { "priority": 100, "direction": direction, "access": "Allow", "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*" } });
    let open = json!({ "location": "westeurope", "properties": { "securityRules": [allow_all("in", "Inbound"), allow_all("out", "Outbound")] } });
    arm.put_done(&nsg, NET, open).await;
    let bastion = json!({ "name": "AzureBastionSubnet", "properties": { "addressPrefix": "10.0.0.0/26", "networkSecurityGroup": { "id": nsg } } });
    arm.put_done(&vnet_id("v"), NET, json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [bastion] } })).await;
    let no_rules = json!({ "location": "westeurope", "properties": { "securityRules": [] } });
    let emptied = arm.put(&nsg, NET, no_rules.clone()).await;
    assert_eq!(
        emptied.code(),
        "NetworkSecurityGroupNotCompliantForAzureBastionSubnet"
    );
    let unattached = arm.put(&nsg_id("other"), NET, no_rules).await;
    assert!(unattached.status.is_success(), "{}", unattached.body);
}

/// Creates private DNS zone `name` in group `rg` and waits for it; its id.
async fn private_zone(arm: &Arm, name: &str) -> String {
    let zone = format!(
        "{}/providers/Microsoft.Network/privateDnsZones/{name}",
        rg("rg")
    );
    until_done(
        arm,
        &arm.put(&zone, "2024-06-01", json!({ "location": "global" }))
            .await,
    )
    .await;
    zone
}

/// Waits for a private DNS write answered 202 with a Location to end.
async fn until_done(arm: &Arm, accepted: &Answer) {
    let location = accepted.header("location").expect("Location header");
    for _ in 0..200 {
        let polled = arm.call(Method::GET, &location, None, &[]).await;
        if polled.status != StatusCode::ACCEPTED {
            assert!(polled.status.is_success(), "{}", polled.body);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("operation never finished");
}

#[tokio::test]
async fn a_private_dns_zone_with_links_cannot_be_deleted_until_they_are_gone() {
    let arm = with_group(EmulatorConfig::default()).await;
    arm.put_done(
        &vnet_id("v"),
        NET,
        json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } }),
    )
    .await;
    let zone = private_zone(&arm, "privatelink.blob.core.windows.net").await;
    let link = format!("{zone}/virtualNetworkLinks/v");
    let body = json!({ "location": "global", "properties": { "virtualNetwork": { "id": vnet_id("v") }, "registrationEnabled": false } });
    until_done(&arm, &arm.put(&link, "2024-06-01", body).await).await;
    let refused = arm.delete(&zone, "2024-06-01").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    until_done(&arm, &arm.delete(&link, "2024-06-01").await).await;
    let accepted = arm.delete(&zone, "2024-06-01").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
}

#[tokio::test]
async fn a_write_into_a_group_being_deleted_is_a_conflict_not_a_missing_group() {
    let arm = with_group(scaled(0.5)).await;
    let deleting = arm.delete(&rg("rg"), "2024-03-01").await;
    assert_eq!(deleting.status, StatusCode::ACCEPTED);
    let refused = arm
        .put(&nsg_id("n"), NET, json!({ "location": "westeurope" }))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "ResourceGroupBeingDeleted");
}

/// The `changedTime` a group listing shows for `id`.
async fn listed_changed(arm: &Arm, id: &str) -> String {
    let url = format!(
        "{}{}/resources?api-version=2021-04-01&$expand=changedTime",
        arm.emulator.url(),
        rg("rg")
    );
    let listing = arm.call(Method::GET, &url, None, &[]).await;
    listing.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str().unwrap().eq_ignore_ascii_case(id))
        .map(|e| e["changedTime"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{id} not listed: {}", listing.body))
}

/// An NSG's rules and a route table's routes are one set with two doors: the parent's array and
/// the child resources. A child's write shows in the parent's GET but leaves the parent's
/// `changedTime` in the group listing where it was (nothing in ARM's documentation says it
/// moves): only reading the parent tells.
#[tokio::test]
async fn rules_and_routes_written_as_children_show_in_the_parent_but_not_in_its_listed_time() {
    let arm = with_group(EmulatorConfig::default()).await;
    let nsg = nsg_id("n");
    let rule = |name: &str, priority: u32| json!({ "name": name, "properties": { "priority": priority, "access": "Allow", "direction": "Inbound", "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*" } });
    arm.put_done(
        &nsg,
        NET,
        json!({ "location": "westeurope", "properties": { "securityRules": [rule("a", 100)] } }),
    )
    .await;
    let listed = listed_changed(&arm, &nsg).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let child = format!("{nsg}/securityRules/open");
    let mut open = rule("open", 200);
    open.as_object_mut().unwrap().remove("name");
    arm.put_done(&child, NET, open).await;
    let parent = arm.get(&nsg, NET).await.body;
    let names: Vec<&str> = parent["properties"]["securityRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "open"]);
    assert_eq!(
        arm.get(&child, NET).await.body["properties"]["priority"],
        200
    );
    let rules = arm.get(&format!("{nsg}/securityRules"), NET).await;
    assert_eq!(rules.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        listed_changed(&arm, &nsg).await,
        listed,
        "a child's write moved its parent's changedTime"
    );
    let mut bad = rule("x", 50);
    bad.as_object_mut().unwrap().remove("name");
    let refused = arm.put(&format!("{nsg}/securityRules/x"), NET, bad).await;
    assert_eq!(refused.code(), "SecurityRuleInvalidPriority");

    // A PUT of the parent states the whole set.
    arm.put_done(
        &nsg,
        NET,
        json!({ "location": "westeurope", "properties": { "securityRules": [rule("b", 300)] } }),
    )
    .await;
    assert_eq!(arm.get(&child, NET).await.status, StatusCode::NOT_FOUND);
    let parent = arm.get(&nsg, NET).await.body;
    assert_eq!(parent["properties"]["securityRules"][0]["name"], "b");
    assert_ne!(listed_changed(&arm, &nsg).await, listed);

    // Routes alike; deleting one through its own path removes it from the table.
    let table = format!("{}/providers/Microsoft.Network/routeTables/rt", rg("rg"));
    let route = json!({ "name": "default", "properties": { "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.0.4" } });
    arm.put_done(
        &table,
        NET,
        json!({ "location": "westeurope", "properties": { "routes": [route] } }),
    )
    .await;
    let deleted = arm.delete(&format!("{table}/routes/default"), NET).await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    assert_eq!(arm.wait(&deleted).await["status"], "Succeeded");
    assert_eq!(
        arm.get(&table, NET).await.body["properties"]["routes"],
        json!([]),
        "the deleted route stayed in its table"
    );
}

/// A subnet written on its own shows in its VNet, and the VNet's `changedTime` stays.
#[tokio::test]
async fn a_subnet_written_on_its_own_leaves_its_vnet_s_listed_time() {
    let arm = with_group(EmulatorConfig::default()).await;
    let vnet = vnet_id("v");
    arm.put_done(
        &vnet,
        NET,
        json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] }, "subnets": [subnet("a", "10.0.0.0/24")] } }),
    )
    .await;
    let listed = listed_changed(&arm, &vnet).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    arm.put_done(
        &format!("{vnet}/subnets/b"),
        NET,
        json!({ "properties": { "addressPrefix": "10.0.1.0/24" } }),
    )
    .await;
    let subnets = arm.get(&vnet, NET).await.body["properties"]["subnets"].clone();
    assert_eq!(subnets.as_array().unwrap().len(), 2);
    assert_eq!(listed_changed(&arm, &vnet).await, listed);
}

/// While an operation runs, `Retry-After` is Azure's constant for its provider (the network
/// provider's 10 s, private DNS's 60 s, scaled like every latency), not the time it has left,
/// and its URLs are shaped as each provider shapes them. The kind answer is a switch.
#[tokio::test]
async fn retry_after_is_the_provider_s_constant_not_the_time_left() {
    const FACTOR: f64 = 0.05;
    let config = |retry_after| EmulatorConfig {
        latency: LatencyProfile::realistic(FACTOR),
        retry_after,
        ..Default::default()
    };
    let ms = |a: &Answer| {
        a.header("retry-after-ms")
            .expect("retry-after-ms")
            .parse::<u64>()
            .unwrap()
    };
    let arm = with_group(config(RetryAfter::Azure)).await;
    let vnet = json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] } } });
    let created = arm.put(&vnet_id("v"), NET, vnet.clone()).await;
    assert_eq!(
        ms(&created),
        500,
        "10 s x {FACTOR}, though the VNet takes 300 ms"
    );
    let status = created.header("azure-asyncoperation").unwrap();
    assert!(
        status.contains("/providers/Microsoft.Network/locations/westeurope/operations/"),
        "{status}"
    );
    let polled = arm.call(Method::GET, &status, None, &[]).await;
    assert_eq!(polled.body["status"], "InProgress");
    assert_eq!(ms(&polled), 500);
    let zone = format!(
        "{}/providers/Microsoft.Network/privateDnsZones/privatelink.azurecr.io",
        rg("rg")
    );
    let accepted = arm
        .put(&zone, "2024-06-01", json!({ "location": "global" }))
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(ms(&accepted), 3000, "60 s x {FACTOR}");
    let location = accepted.header("location").unwrap();
    assert!(
        location
            .contains("/resourceGroups/rg/providers/Microsoft.Network/privateDnsOperationResults/"),
        "{location}"
    );
    until_done(&arm, &accepted).await;

    let kind = with_group(config(RetryAfter::TimeLeft)).await;
    let created = kind.put(&vnet_id("v"), NET, vnet).await;
    assert!(ms(&created) <= 300, "the time left: {}", ms(&created));
}

/// A private DNS zone's PATCH is long-running like its PUT (`PrivateZones_Update` answers
/// 200 or 202 and is `x-ms-long-running-operation` in privatedns.json 2024-06-01).
#[tokio::test]
async fn a_private_dns_zone_patch_is_long_running() {
    let arm = with_group(EmulatorConfig::default()).await;
    let zone = private_zone(&arm, "privatelink.vaultcore.azure.net").await;
    let patched = arm
        .call(
            Method::PATCH,
            &arm.url(&zone, "2024-06-01"),
            Some(json!({ "tags": { "team": "platform" } })),
            &[],
        )
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.body);
    assert!(patched
        .header("azure-asyncoperation")
        .is_some_and(|u| u.contains("/privateDnsOperationStatuses/")));
    until_done(&arm, &patched).await;
    assert_eq!(
        arm.get(&zone, "2024-06-01").await.body["tags"]["team"],
        "platform"
    );
}

#[tokio::test]
async fn a_running_firewall_operation_holds_its_policy_and_its_vnet() {
    // A firewall takes minutes in Azure: scaled so that it runs for a few seconds here.
    let arm = with_group(scaled(0.005)).await;
    let (id, pip) = firewall_network(&arm).await;
    let policy = format!(
        "{}/providers/Microsoft.Network/firewallPolicies/p",
        rg("rg")
    );
    arm.put_done(
        &policy,
        NET,
        json!({ "location": "westeurope", "properties": {} }),
    )
    .await;
    let group = format!("{policy}/ruleCollectionGroups/g");
    let group_body = json!({ "properties": { "priority": 200, "ruleCollections": [] } });
    let fw = format!("{}/providers/Microsoft.Network/azureFirewalls/fw", rg("rg"));
    let body = json!({ "location": "westeurope", "properties": {
        "firewallPolicy": { "id": policy },
        "ipConfigurations": [{ "name": "c", "properties": { "subnet": { "id": format!("{id}/subnets/AzureFirewallSubnet") }, "publicIPAddress": { "id": pip } } }] } });
    let running = arm.put(&fw, NET, body).await;
    assert_eq!(running.status, StatusCode::CREATED);
    // While it runs, neither a rule collection group of its policy nor a subnet of its VNet
    // can be written.
    let refused = arm.put(&group, NET, group_body.clone()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "AnotherOperationInProgress");
    let subnet_write = arm
        .put(
            &format!("{id}/subnets/a"),
            NET,
            json!({ "properties": { "addressPrefix": "10.0.1.0/24" } }),
        )
        .await;
    assert_eq!(subnet_write.code(), "AnotherOperationInProgress");
    arm.wait(&running).await;
    assert!(arm.put(&group, NET, group_body).await.status.is_success());
}
