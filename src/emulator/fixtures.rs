//! The Azure that exists before the operator runs, for the examples in `deploy/examples`: the
//! PaaS services the PrivateEndpointSets reach, the internal load balancers AKS made for each
//! stamp's ingress, and (North Europe) the Private Link Service AKS made, which that stamp adopts.
//! Seeded through the emulator's own HTTP API, so every body passes the same validation as the
//! operator's. Used by `make demo`, `make bench` and the tests.

use std::time::Duration;

use serde_json::{json, Value};

/// The examples' subscription.
pub const SUBSCRIPTION: &str = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";

/// The PaaS services the examples' PrivateEndpointSets reach.
const PAAS: [(&str, &str); 8] = [
    ("rg-prod-weu", "Microsoft.KeyVault/vaults/kv-prod-weu"),
    ("rg-prod-neu", "Microsoft.KeyVault/vaults/kv-prod-neu"),
    (
        "rg-prod-data",
        "Microsoft.ContainerRegistry/registries/acrprod",
    ),
    (
        "rg-prod-data",
        "Microsoft.DocumentDB/databaseAccounts/cosmos-prod",
    ),
    ("rg-prod-weu", "Microsoft.EventHub/namespaces/evh-prod-weu"),
    ("rg-prod-neu", "Microsoft.EventHub/namespaces/evh-prod-neu"),
    ("rg-prod-weu", "Microsoft.Storage/storageAccounts/stprodweu"),
    ("rg-prod-neu", "Microsoft.Storage/storageAccounts/stprodneu"),
];

fn group_id(group: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}")
}

/// `(id, api-version, body)` of every seeded resource, in creation order.
pub fn example_world() -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for group in [
        "rg-prod-weu",
        "rg-prod-neu",
        "rg-prod-data",
        "mc-weu-blue",
        "mc-neu-blue",
    ] {
        out.push((
            group_id(group),
            "2024-03-01",
            json!({ "location": "westeurope" }),
        ));
    }
    for (group, path) in PAAS {
        out.push((
            format!("{}/providers/{path}", group_id(group)),
            "2023-01-01",
            json!({ "location": "westeurope", "properties": {} }),
        ));
    }
    let weu = format!("{}/providers/Microsoft.Network", group_id("mc-weu-blue"));
    out.push((
        format!("{weu}/loadBalancers/kubernetes-internal"),
        "2024-05-01",
        json!({ "location": "westeurope", "properties": { "frontendIPConfigurations": [
            { "name": "ingress", "properties": { "privateIPAddress": "10.10.8.196" } } ] } }),
    ));
    // North Europe: AKS made its own VNet, load balancer and Private Link Service.
    let neu = format!("{}/providers/Microsoft.Network", group_id("mc-neu-blue"));
    let subnet = format!("{neu}/virtualNetworks/aks-vnet/subnets/pls");
    let lb = format!("{neu}/loadBalancers/kubernetes-internal");
    out.push((
        format!("{neu}/virtualNetworks/aks-vnet"),
        "2024-05-01",
        json!({ "location": "northeurope", "properties": {
            "addressSpace": { "addressPrefixes": ["10.224.0.0/16"] },
            "subnets": [{ "name": "pls", "properties": {
                "addressPrefix": "10.224.1.0/24", "privateLinkServiceNetworkPolicies": "Disabled" } }] } }),
    ));
    out.push((
        lb.clone(),
        "2024-05-01",
        json!({ "location": "northeurope", "properties": { "frontendIPConfigurations": [
            { "name": "ingress", "properties": { "privateIPAddress": "10.224.1.10", "subnet": { "id": subnet } } } ] } }),
    ));
    out.push((
        format!("{neu}/privateLinkServices/pls-ingress"),
        "2024-05-01",
        json!({ "location": "northeurope", "properties": {
            "loadBalancerFrontendIpConfigurations": [{ "id": format!("{lb}/frontendIPConfigurations/ingress") }],
            "ipConfigurations": [{ "name": "nat", "properties": { "subnet": { "id": subnet } } }] } }),
    ));
    out
}

/// Seeds `example_world()` into the emulator at `base_url`, waiting for each resource to finish
/// provisioning before the next (later ones refer to earlier ones). Returns the ids seeded.
pub async fn seed_examples(base_url: &str, token: &str) -> Result<Vec<String>, String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (id, api_version, body) in example_world() {
        let url = format!("{base_url}{id}?api-version={api_version}");
        let answer = http
            .put(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("PUT {id}: {e}"))?;
        if !answer.status().is_success() {
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            return Err(format!("PUT {id}: {status}: {text}"));
        }
        settle(&http, &url, &id, token).await?;
        ids.push(id);
    }
    Ok(ids)
}

async fn settle(http: &reqwest::Client, url: &str, id: &str, token: &str) -> Result<(), String> {
    for _ in 0..3000 {
        let live: Value = http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("GET {id}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GET {id}: {e}"))?;
        match live
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
        {
            None | Some("Succeeded") => return Ok(()),
            Some("Failed") => return Err(format!("seeding {id} failed")),
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Err(format!("{id} did not finish provisioning"))
}
