//! Trust boundaries end to end (real API server, the chart's RBAC, the emulator): only Front
//! Door's private-link connection is approved, a failed approval is told, and the operator's
//! token goes only to the ARM endpoint.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use stamp_operator::azure::PutOutcome;
use stamp_operator::emulator::{FaultAction, FaultRule};
use support::expect::{applied_ready, condition, events, eventually, ready as wait_ready, stamp};
use support::operator::Operator;
use support::stage::{json_of, stage, Stage};

const NET: &str = "2024-05-01";
/// A subscription nothing of the examples lives in: another tenant's.
const STRANGER: &str = "99999999-8888-7777-6666-555555555555";

async fn done(st: &Stage, outcome: PutOutcome) {
    if let PutOutcome::Started(op) = outcome {
        st.arm.wait(&op).await.unwrap();
    }
}

/// A VNet in another tenant's subscription, with a subnet for private endpoints.
async fn strangers_subnet(st: &Stage) -> String {
    let group = format!("/subscriptions/{STRANGER}/resourceGroups/elsewhere");
    done(
        st,
        st.arm
            .put(
                &group,
                "2024-03-01",
                &json!({ "location": "westeurope" }),
                None,
            )
            .await
            .unwrap(),
    )
    .await;
    let vnet = format!("{group}/providers/Microsoft.Network/virtualNetworks/theirs");
    let body = json!({ "location": "westeurope", "properties": {
        "addressSpace": { "addressPrefixes": ["192.168.0.0/24"] },
        "subnets": [{ "name": "pe", "properties": { "addressPrefix": "192.168.0.0/26" } }]
    } });
    done(st, st.arm.put(&vnet, NET, &body, None).await.unwrap()).await;
    format!("{vnet}/subnets/pe")
}

/// A private endpoint from `subnet` asking for `pls` with `message`.
async fn request(st: &Stage, subnet: &str, name: &str, pls: &str, message: &str) {
    let group = subnet.split("/providers/").next().unwrap();
    let id = format!("{group}/providers/Microsoft.Network/privateEndpoints/{name}");
    let body = json!({ "location": "westeurope", "properties": {
        "subnet": { "id": subnet },
        "privateLinkServiceConnections": [{ "name": name, "properties": {
            "privateLinkServiceId": pls, "requestMessage": message
        } }]
    } });
    done(
        st,
        st.arm.put(&id, "2024-03-01", &body, None).await.unwrap(),
    )
    .await;
}

/// The connections on `pls`: `(name, status, description)`.
async fn connections(st: &Stage, pls: &str) -> Vec<(String, String, String)> {
    let live = st.arm.get(pls, NET).await.unwrap().unwrap();
    live.body["properties"]["privateEndpointConnections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = &c["properties"]["privateLinkServiceConnectionState"];
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                state["status"].as_str().unwrap_or_default().to_string(),
                state["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// A stage with one operator replica and stamp `prod/weu-blue` Ready: its status, and the id of
/// its Private Link Service.
async fn weu_blue_ready() -> (Stage, Operator, Value, String) {
    let st = stage().await;
    let operator = st.operator("replica-a", "127.0.0.1:0");
    applied_ready(&st, &["prod", "weu-blue"], &operator);
    let status = stamp(&st)["status"].clone();
    let pls = status["outputs"]["privateLinkServiceId"]
        .as_str()
        .unwrap()
        .to_string();
    (st, operator, status, pls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_with_the_old_or_a_copied_request_message_is_not_approved_but_reported() {
    let (st, operator, status, pls) = weu_blue_ready().await;
    let origin = status["outputs"]["frontDoorOriginId"]
        .as_str()
        .unwrap()
        .to_string();
    // The secret: in Azure (the origin), never in the stamp's status.
    let secret = st
        .arm
        .get(&origin, "2024-09-01")
        .await
        .unwrap()
        .unwrap()
        .body["properties"]["sharedPrivateLinkResource"]["requestMessage"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !status.to_string().contains(&secret),
        "the secret request message is in status: {status:#}"
    );
    assert!(
        !operator.log().contains(&secret),
        "the secret is in the log"
    );
    let fd = status["privateLinkConnection"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let subnet = strangers_subnet(&st).await;
    // The message older versions used, derivable from names alone.
    request(
        &st,
        &subnet,
        "guessed",
        &pls,
        "missioncritical.dev/globalplane=prod stamp=prod/weu-blue",
    )
    .await;
    // The secret itself, learnt somehow.
    request(&st, &subnet, "copied", &pls, &secret).await;
    st.patch_stamp(r#"{"frontDoor":{"weight":60}}"#);
    eventually("the strangers' rejection", &operator, async || {
        let theirs: Vec<_> = connections(&st, &pls)
            .await
            .into_iter()
            .filter(|(name, _, _)| *name != fd)
            .collect();
        theirs.len() == 2 && theirs.iter().all(|(_, state, _)| state == "Rejected")
    })
    .await;
    let ours = connections(&st, &pls).await;
    let approved: Vec<_> = ours.iter().filter(|(_, s, _)| s == "Approved").collect();
    assert_eq!(approved.len(), 1, "{ours:?}");
    assert_eq!(
        approved[0].0, fd,
        "only Front Door's connection is approved"
    );
    eventually("the report of the copied message", &operator, async || {
        let (_, reason, message) = condition(&stamp(&st), "PrivateLinkApproved");
        reason == "ApprovedWithUnexpectedRequesters"
            && message.contains("copied")
            && !message.contains("guessed")
            && !events(&st, "UnexpectedRequester").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_approval_keeps_the_stamp_from_ready_until_it_succeeds() {
    let st = stage().await;
    let refusal = FaultRule::new(FaultAction::Status {
        status: 409,
        code: "Conflict".into(),
        retry_after_seconds: None,
    })
    .method("PUT")
    .resource_type("Microsoft.Network/privateLinkServices/privateEndpointConnections");
    st.emulator.add_fault(refusal);
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    eventually("the approval's failure in status", &operator, async || {
        let (status, reason, message) = condition(&stamp(&st), "PrivateLinkApproved");
        status == "False" && reason == "ApprovalFailed" && message.contains("Conflict")
    })
    .await;
    let s = stamp(&st);
    assert_eq!(condition(&s, "Ready").0, "False", "{:#}", s["status"]);
    assert_ne!(s["status"]["privateLinkConnection"]["state"], "Approved");
    st.emulator.clear_faults();
    wait_ready(&st, objects, &operator);
    assert_eq!(
        stamp(&st)["status"]["privateLinkConnection"]["state"],
        "Approved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_approval_in_a_persons_words_makes_the_stamp_ready() {
    let st = stage().await;
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let manual = std::fs::read_to_string(&objects)
        .unwrap()
        .replace("mode: ApproveMatching", "mode: Manual");
    assert!(manual.contains("mode: Manual"));
    std::fs::write(&objects, manual).unwrap();
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    let mut pls = String::new();
    eventually("Front Door's pending connection", &operator, async || {
        let s = stamp(&st);
        let found = s["status"]["privateLinkConnection"]["state"] == "Pending";
        pls = s["status"]["outputs"]["privateLinkServiceId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        found
    })
    .await;
    let s = stamp(&st);
    assert_eq!(condition(&s, "Ready").0, "False");
    let name = s["status"]["privateLinkConnection"]["name"]
        .as_str()
        .unwrap();
    let id = format!("{pls}/privateEndpointConnections/{name}");
    let body = json!({ "properties": { "privateLinkServiceConnectionState": {
        "status": "Approved", "description": "ok - jane, change 4711", "actionsRequired": "None"
    } } });
    done(&st, st.arm.put(&id, NET, &body, None).await.unwrap()).await;
    st.patch_stamp(r#"{"frontDoor":{"weight":60}}"#);
    wait_ready(&st, objects, &operator);
    assert_eq!(
        stamp(&st)["status"]["privateLinkConnection"]["state"],
        "Approved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_url_patched_into_status_never_gets_the_token() {
    let st = stage().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let thief = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let operator = st.operator("replica-a", "127.0.0.1:0");
    applied_ready(&st, &["prod", "weu-blue"], &operator);
    let vnet = stamp(&st)["status"]["outputs"]["virtualNetworkId"]
        .as_str()
        .unwrap()
        .to_string();
    let planted = json!({ "status": { "inFlight": [{
        "resourceId": vnet,
        "kind": "Put",
        "pollUrl": format!("{thief}/subscriptions/x/operations/1"),
        "pollStyle": "AsyncOperation",
        // Later than any listing's changedTime, so no listing can tell its end: only a poll.
        "startedAt": "4070908800"
    }] } })
    .to_string();
    st.cp.kubectl_ok(&[
        "patch",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--subresource=status",
        "--type=merge",
        "-p",
        &planted,
    ]);
    // A URL without the ARM shape is refused by the API server itself.
    let odd = planted.replace("/subscriptions/x/operations/1", "/steal");
    let refused = st.cp.kubectl(&[
        "patch",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--subresource=status",
        "--type=merge",
        "-p",
        &odd,
    ]);
    assert!(!refused.status.success(), "the CRD accepted {odd}");
    st.patch_stamp(r#"{"frontDoor":{"weight":70}}"#);
    eventually(
        "a pass that refuses the planted URL",
        &operator,
        async || {
            let s = stamp(&st);
            s["status"]["observedGeneration"] == s["metadata"]["generation"]
                && condition(&s, "Ready").0 == "True"
                && operator.log().contains("refused to send the ARM token")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the operator called the planted URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_from_a_namespace_the_global_plane_does_not_admit_is_refused_without_a_write() {
    let st = stage().await;
    st.cp.kubectl_ok(&["create", "namespace", "intruder"]);
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let global = st.examples_named(&["prod"]);
    let text = std::fs::read_to_string(&global).unwrap();
    assert!(
        text.contains("allowedNamespaces:"),
        "the example GlobalPlane admits only prod:\n{text}"
    );
    let global = global.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", global]);
    wait_ready(&st, global, &operator);
    let stamp_file = st.examples_named(&["weu-blue"]);
    let text = std::fs::read_to_string(&stamp_file).unwrap();
    std::fs::write(
        &stamp_file,
        text.replace("namespace: prod", "namespace: intruder"),
    )
    .unwrap();
    st.cp
        .kubectl_ok(&["apply", "-f", stamp_file.to_str().unwrap()]);
    let intruder = || {
        json_of(
            &st.cp,
            &["get", "stamp", "weu-blue", "-n", "intruder", "-o", "json"],
        )
    };
    eventually("the refusal in status", &operator, async || {
        let (status, reason, message) = condition(&intruder(), "AddressPlan");
        status == "False" && reason == "InvalidSpec" && message.contains("allowedNamespaces")
    })
    .await;
    assert_eq!(condition(&intruder(), "Ready").0, "False");
    let key = stamp_operator::plan::naming::object_key("intruder", "weu-blue").to_ascii_lowercase();
    assert_eq!(
        st.writes_under(&key),
        0,
        "an Azure write for a refused stamp"
    );

    // Admitting the namespace wakes the stamp (no edit of the stamp, no resync needed).
    let admit =
        json!({ "spec": { "allowedNamespaces": { "list": ["prod", "intruder"] } } }).to_string();
    st.cp
        .kubectl_ok(&["patch", "globalplane", "prod", "--type=merge", "-p", &admit]);
    eventually("the admitted stamp's plan", &operator, async || {
        condition(&intruder(), "AddressPlan").0 == "True"
    })
    .await;
}

/// Opens the first application rule of rule collection group `rcg` to every FQDN, behind the
/// operator's back.
async fn widen_to_every_fqdn(st: &Stage, rcg: &str) {
    let mut widened = st.arm.get(rcg, NET).await.unwrap().unwrap().body;
    widened["properties"]["ruleCollections"][0]["rules"][0]["targetFqdns"] = json!(["*"]);
    let widened = json!({ "properties": widened["properties"].clone() });
    done(st, st.arm.put(rcg, NET, &widened, None).await.unwrap()).await;
}

/// The one resource in the emulator's inventory of type segment `kind` (`subnets`) whose name
/// contains every one of `parts`.
fn id_with(st: &Stage, kind: &str, parts: &[&str]) -> String {
    let found: Vec<String> = st
        .emulator
        .inventory()
        .into_iter()
        .filter(|id| {
            let mut tail = id.rsplit('/');
            let name = tail.next().unwrap_or_default();
            tail.next() == Some(kind) && parts.iter().all(|p| name.contains(p))
        })
        .collect();
    assert_eq!(found.len(), 1, "{kind} {parts:?}: {found:?}");
    found[0].clone()
}

/// Someone with write access to the stamp's network — a neighbour with one RBAC verb too many —
/// edits the children that carry its security through ARM's own child paths, which leave every
/// `changedTime` a group listing shows as it was: the route table detached from the app
/// subnet, an allow-all rule added to its NSG, a firewall rule collection group widened, a
/// stranger's connection approved on the Private Link Service. The next resync (nobody pokes
/// the stamp) finds each, puts it back and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_children_edited_behind_the_operator_s_back_are_repaired_at_the_next_resync() {
    let (st, operator, _, pls) = weu_blue_ready().await;
    let vnet = id_with(&st, "virtualNetworks", &["vnet-weu-blue"]);
    let app_subnet = format!("{vnet}/subnets/snet-app");
    let nsg = id_with(&st, "networkSecurityGroups", &["nsg-weu-blue", "-app"]);
    let rcg = id_with(&st, "ruleCollectionGroups", &["platform"]);
    let subnet_body = |live: &Value| json!({ "properties": live["properties"].clone() });

    // The route table detached from the app subnet.
    let live = st.arm.get(&app_subnet, NET).await.unwrap().unwrap().body;
    assert!(live["properties"]["routeTable"].is_object());
    let mut detached = subnet_body(&live);
    detached["properties"]
        .as_object_mut()
        .unwrap()
        .remove("routeTable");
    done(
        &st,
        st.arm.put(&app_subnet, NET, &detached, None).await.unwrap(),
    )
    .await;
    // An allow-all rule ahead of every other.
    let allow_all = json!({ "properties": { "priority": 100, "access": "Allow", "direction": "Outbound", "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*" } });
    let rule = format!("{nsg}/securityRules/allow-all");
    done(&st, st.arm.put(&rule, NET, &allow_all, None).await.unwrap()).await;
    // The platform rules opened to every FQDN.
    widen_to_every_fqdn(&st, &rcg).await;
    // A stranger's private endpoint, approved by hand.
    let subnet = strangers_subnet(&st).await;
    request(&st, &subnet, "backdoor", &pls, "please").await;
    let name = connections(&st, &pls)
        .await
        .into_iter()
        .find(|(_, _, description)| description == "please")
        .map(|(name, _, _)| name)
        .unwrap();
    let backdoor = format!("{pls}/privateEndpointConnections/{name}");
    let approve = json!({ "properties": { "privateLinkServiceConnectionState": { "status": "Approved", "description": "approved by hand", "actionsRequired": "None" } } });
    done(
        &st,
        st.arm.put(&backdoor, NET, &approve, None).await.unwrap(),
    )
    .await;

    eventually("every edit repaired by a resync", &operator, async || {
        let subnet = st.arm.get(&app_subnet, NET).await.unwrap().unwrap().body;
        let rules = st.arm.get(&nsg, NET).await.unwrap().unwrap().body;
        let group = st.arm.get(&rcg, NET).await.unwrap().unwrap().body;
        let stranger = connections(&st, &pls)
            .await
            .into_iter()
            .any(|(n, state, _)| n == name && state == "Rejected");
        subnet["properties"]["routeTable"].is_object()
            && !rules.to_string().contains("allow-all")
            && group["properties"]["ruleCollections"][0]["rules"][0]["targetFqdns"] != json!(["*"])
            && stranger
    })
    .await;
    let approved: Vec<_> = connections(&st, &pls)
        .await
        .into_iter()
        .filter(|(_, s, _)| s == "Approved")
        .collect();
    assert_eq!(
        approved.len(),
        1,
        "only Front Door's stays approved: {approved:?}"
    );
    let repaired = events(&st, "DriftRepaired").join("\n");
    for what in [&vnet, &nsg, &rcg] {
        let name = what.rsplit('/').next().unwrap();
        assert!(
            repaired.contains(name),
            "no DriftRepaired event names {name}: {repaired}"
        );
    }
    eventually("the approved stranger reported", &operator, async || {
        let told = events(&st, "UnexpectedConnectionApproved").join("\n");
        told.contains(&name) && told.contains("rejected")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_flow_opened_while_writes_are_off_is_named_by_network_isolated() {
    let (st, operator, status, _) = weu_blue_ready().await;
    let (isolated, _, message) = condition(&json!({ "status": status }), "NetworkIsolated");
    assert_eq!(isolated, "True", "{message}");
    assert!(
        message.contains("forbidden flows checked are denied"),
        "{message}"
    );
    st.patch_stamp(r#"{"managementPolicy":"ObserveOnly"}"#);
    eventually("the stamp observes only", &operator, async || {
        condition(&stamp(&st), "Writes").1 == "ObserveOnly"
    })
    .await;
    // Someone opens the platform rules to every FQDN.
    let rcg = id_with(&st, "ruleCollectionGroups", &["platform"]);
    widen_to_every_fqdn(&st, &rcg).await;

    eventually(
        "NetworkIsolated names the flow the rule lets through",
        &operator,
        async || {
            let (isolated, reason, message) = condition(&stamp(&st), "NetworkIsolated");
            isolated == "False"
                && reason == "ForbiddenFlowAllowed"
                && message.contains("app → exfil.example.com:443, not on the allow list")
                && message.contains("platform/allow-fqdns/aks-required")
        },
    )
    .await;
    // Writes stay off: the widened rule is reported, not repaired.
    let live = st.arm.get(&rcg, NET).await.unwrap().unwrap().body;
    assert_eq!(
        live["properties"]["ruleCollections"][0]["rules"][0]["targetFqdns"],
        json!(["*"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_flow_opened_in_an_operations_network_is_named_by_the_global_plane() {
    let (st, operator, _, _) = weu_blue_ready().await;
    let global = || json_of(&st.cp, &["get", "globalplane", "prod", "-o", "json"]);
    let (isolated, _, message) = condition(&global(), "OperationsNetworksIsolated");
    assert_eq!(isolated, "True", "{message}");
    st.cp.kubectl_ok(&[
        "patch",
        "globalplane",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"managementPolicy":"ObserveOnly"}}"#,
    ]);
    // Once the new generation is observed, passes only read.
    eventually("the GlobalPlane observes only", &operator, async || {
        let g = global();
        g["metadata"]["generation"] == g["status"]["observedGeneration"]
    })
    .await;
    // Someone opens the West Europe operations firewall to every FQDN.
    let rcg = st
        .emulator
        .inventory()
        .into_iter()
        .find(|id| id.contains("afwp-ops-westeurope") && id.ends_with("/operations"))
        .expect("the operations firewall's rule collection group");
    widen_to_every_fqdn(&st, &rcg).await;

    eventually(
        "the GlobalPlane names the flow the rule lets through",
        &operator,
        async || {
            let (isolated, reason, message) = condition(&global(), "OperationsNetworksIsolated");
            isolated == "False"
                && reason == "ForbiddenFlowAllowed"
                && message
                    .contains("westeurope: forbidden flow build agents → exfil.example.com:443")
        },
    )
    .await;
}
