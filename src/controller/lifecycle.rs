//! What an object owns in Azure, and removing what it no longer wants.
//!
//! The inventory is Azure's own: every tracked resource the operator creates carries the owner
//! tag (`plan::owner`), written by the PUT that creates it, so a restarted operator finds all
//! of it in the listing of the resource group. Proxy children carry no tags; the ones a spec
//! edit can drop (rule collection groups, Front Door routes) are found by listing their
//! parent, which only its owner writes. What the operator merely observes — an existing
//! resource group, an adopted Private Link Service, external DNS zones, endpoint targets —
//! never carries the tag, so nothing here can touch it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::converge::{settle, Convergence};
use crate::azure::{ArmClient, AzureError, DeleteOutcome, ListingAge};
use crate::plan::{removal_rank, DesiredGraph, Owner, Ownership, ResourceKind};

/// Something the owner created that its desired graph no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    /// ARM id, as Azure spelt it.
    pub id: String,
    /// ARM type (`Microsoft.Network/privateEndpoints`).
    pub resource_type: String,
    /// Whether Azure is deleting it already.
    pub deleting: bool,
}

/// The proxy children whose parent only its owner writes, so that every child not in the
/// graph is a leftover: `(parent kind, child collection, child type)`.
const OWNED_CHILDREN: [(ResourceKind, &str, ResourceKind); 2] = [
    // `aksRequired: false`, an emptied allow list: their rule collection groups must go, or
    // the firewall keeps allowing what the spec no longer does.
    (
        ResourceKind::FirewallPolicy,
        "ruleCollectionGroups",
        ResourceKind::RuleCollectionGroup,
    ),
    // A route removed from the GlobalPlane keeps routing until it is deleted.
    (
        ResourceKind::FrontDoorEndpoint,
        "routes",
        ResourceKind::FrontDoorRoute,
    ),
];

/// What `owner` created in the resource groups of `graph`, and under the parents it owns,
/// that `graph` does not hold: tracked resources by their owner tag in the group listings
/// (shared with the pass that just read them, when no older than `age` allows), proxy children
/// by listing their parents (a read each). Ordered for removal: what uses a resource first.
pub async fn strays(
    arm: &ArmClient,
    graph: &DesiredGraph,
    owner: &Owner,
    age: ListingAge,
) -> Result<Vec<Stray>, AzureError> {
    let wanted: BTreeSet<String> = graph
        .resources
        .iter()
        .map(|r| r.id.as_str().to_ascii_lowercase())
        .collect();
    let groups: BTreeSet<(String, String)> = graph
        .resources
        .iter()
        .filter(|r| r.ownership == Ownership::Managed)
        .map(|r| {
            (
                r.id.subscription().to_ascii_lowercase(),
                r.id.resource_group_name().to_ascii_lowercase(),
            )
        })
        .collect();
    let mut found = Vec::new();
    for (subscription, group) in groups {
        let listing = arm.list_group_recent(&subscription, &group, age).await?;
        for entry in listing.iter().flatten() {
            if owner.owns(&entry["tags"]) {
                found.extend(stray(entry, &wanted));
            }
        }
    }
    for (parent_kind, collection, child_kind) in OWNED_CHILDREN {
        for parent in graph
            .of_kind(parent_kind)
            .filter(|r| r.ownership == Ownership::Managed)
        {
            let children = arm
                .list_children(parent.id.as_str(), collection, child_kind.api_version())
                .await?;
            found.extend(children.iter().flatten().filter_map(|c| stray(c, &wanted)));
        }
    }
    found.sort_by_key(|s| (removal_rank(&s.resource_type), s.id.to_ascii_lowercase()));
    found.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
    Ok(found)
}

/// `entry` of a listing as a stray, unless `wanted` holds it.
fn stray(entry: &Value, wanted: &BTreeSet<String>) -> Option<Stray> {
    let id = entry["id"].as_str()?;
    if wanted.contains(&id.to_ascii_lowercase()) {
        return None;
    }
    let state = entry["provisioningState"]
        .as_str()
        .or_else(|| entry.pointer("/properties/provisioningState")?.as_str());
    Some(Stray {
        id: id.to_string(),
        resource_type: entry["type"].as_str().unwrap_or_default().to_string(),
        deleting: state == Some("Deleting"),
    })
}

/// The api-version to delete a resource of `resource_type` with.
fn api_version_for(resource_type: &str, id: &str) -> &'static str {
    crate::plan::graph::ALL_KINDS
        .iter()
        .find(|k| k.arm_type().eq_ignore_ascii_case(resource_type))
        .map_or_else(
            || match crate::plan::ArmId::parse("id", id) {
                Ok(id) => ResourceKind::api_version_of(&id),
                Err(_) => ResourceKind::VirtualNetwork.api_version(),
            },
            |k| k.api_version(),
        )
}

/// What removing strays came to.
#[derive(Debug, Default)]
pub struct Removal {
    /// Ids deleted now.
    pub removed: Vec<String>,
    /// Ids still being deleted (by this pass or an earlier one).
    pub removing: Vec<String>,
    /// The first refusal, if any: the rest waits for the next pass.
    pub failed: Option<AzureError>,
}

/// Deletes `strays` in their order, one rank at a time: a resource waits until everything of
/// a lower rank (what uses it) is gone. Each delete is waited for up to `inline_wait`; one
/// still running then is left to the next pass, which finds it `Deleting`.
pub async fn remove(arm: &ArmClient, strays: &[Stray], inline_wait: Duration) -> Removal {
    let mut out = Removal::default();
    let mut blocking_rank = None;
    for s in strays {
        let rank = removal_rank(&s.resource_type);
        if blocking_rank.is_some_and(|r| r < rank) {
            break;
        }
        if s.deleting {
            out.removing.push(s.id.clone());
            blocking_rank = Some(rank);
            continue;
        }
        match delete(arm, s, inline_wait).await {
            Ok(true) => out.removed.push(s.id.clone()),
            Ok(false) => {
                out.removing.push(s.id.clone());
                blocking_rank = Some(rank);
            }
            Err(e) => {
                out.removing.push(s.id.clone());
                out.failed.get_or_insert(e);
                blocking_rank = Some(rank);
            }
        }
    }
    out
}

/// Deletes one stray; `Ok(true)` once it is gone.
async fn delete(arm: &ArmClient, s: &Stray, inline_wait: Duration) -> Result<bool, AzureError> {
    match arm
        .delete(&s.id, api_version_for(&s.resource_type, &s.id))
        .await?
    {
        DeleteOutcome::Gone => Ok(true),
        DeleteOutcome::Started(op) => settle(arm, op, inline_wait).await,
    }
}

/// Removes what `owner` created that `graph` no longer holds, after a pass that converged, and
/// records in `pass` what is still being removed (the pass is then not converged: the next
/// pass lists again and carries on).
pub async fn collect_garbage(
    arm: &ArmClient,
    graph: &DesiredGraph,
    owner: &Owner,
    age: ListingAge,
    inline_wait: Duration,
    pass: &mut Convergence,
) {
    let found = match strays(arm, graph, owner, age).await {
        Ok(found) => found,
        Err(e) => {
            pass.removal_failed(format!("listing what {owner} created: {e}"));
            return;
        }
    };
    if found.is_empty() {
        return;
    }
    let removal = remove(arm, &found, inline_wait).await;
    for id in &removal.removed {
        tracing::info!(%owner, %id, "removed what left the spec");
        pass.touched.insert(id.to_ascii_lowercase());
    }
    pass.removed.extend(removal.removed);
    if let Some(e) = removal.failed {
        pass.removal_failed(format!("removing what left the spec: {e}"));
    }
    if !removal.removing.is_empty() {
        pass.removing.extend(removal.removing);
    }
}

/// Deletes the tracked resources of `group` that `picked` chooses (given a listing entry),
/// what uses a resource first. `Ok(true)` once none is left; `Ok(false)` while some are being
/// deleted; Azure's refusal as `Err`.
pub async fn remove_listed(
    arm: &ArmClient,
    group: &crate::plan::ArmId,
    picked: impl Fn(&Value) -> bool,
    inline_wait: Duration,
) -> Result<bool, AzureError> {
    let listing = arm
        .list_group(group.subscription(), group.resource_group_name())
        .await?;
    let none = BTreeSet::new();
    let mut found: Vec<Stray> = listing
        .iter()
        .flatten()
        .filter(|e| picked(e))
        .filter_map(|e| stray(e, &none))
        .collect();
    if found.is_empty() {
        return Ok(true);
    }
    found.sort_by_key(|s| (removal_rank(&s.resource_type), s.id.to_ascii_lowercase()));
    let removal = remove(arm, &found, inline_wait).await;
    match removal.failed {
        Some(e) => Err(e),
        None => Ok(removal.removed.len() == found.len()),
    }
}

/// Deletes what `owner` created in `group`: the whole group when the operator created it for
/// `owner`, otherwise only the resources carrying `owner`'s tag — never the group or what
/// others put there. `Ok(true)` once it is all gone.
pub async fn remove_owned(
    arm: &ArmClient,
    group: &crate::plan::ArmId,
    owner: &Owner,
    inline_wait: Duration,
) -> Result<bool, AzureError> {
    let api_version = ResourceKind::ResourceGroup.api_version();
    let Some(live) = arm.get(group.as_str(), api_version).await? else {
        return Ok(true);
    };
    if created_for(owner, &live.body["tags"]) {
        return match arm.delete(group.as_str(), api_version).await? {
            DeleteOutcome::Gone => Ok(true),
            DeleteOutcome::Started(op) => settle(arm, op, inline_wait).await,
        };
    }
    remove_listed(arm, group, |e| owner.owns(&e["tags"]), inline_wait).await
}

/// Whether each resource group a plan names was created by this operator, as found once per
/// group by this process: a group is created with its owner's tag, so one that exists without
/// it existed before the operator and is only observed — never re-tagged (a PUT would replace
/// its tags), never deleted (it holds what others put there). The answer never changes while
/// the group lives, so it is read once, not every pass.
#[derive(Debug, Default)]
pub struct GroupOwners(std::sync::Mutex<std::collections::HashMap<String, bool>>);

impl GroupOwners {
    fn known(&self, key: &str) -> Option<bool> {
        self.lock().get(key).copied()
    }

    fn record(&self, key: String, foreign: bool) {
        self.lock().insert(key, foreign);
    }

    /// Forgets `id` (it was deleted: a group of that name made later is another group).
    pub fn forget(&self, id: &str) {
        self.lock().remove(&id.to_ascii_lowercase());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, bool>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `tags` show a group this operator created for `owner`: the owner tag, or the tags
/// versions before it wrote (so groups created before the owner tag existed are still
/// recognised and cleaned up).
pub fn created_for(owner: &Owner, tags: &Value) -> bool {
    if owner.owns(tags) {
        return true;
    }
    let tag = |name: &str| tags.get(name).and_then(Value::as_str);
    if tag("managed-by") != Some("stamp-operator") || tag(crate::plan::OWNER_TAG).is_some() {
        return false;
    }
    match owner.as_str().split_once('/') {
        Some(("Stamp", stamp)) => tag("missioncritical.dev/stamp") == Some(stamp),
        Some(("GlobalPlane", global)) => {
            tag("missioncritical.dev/global-plane") == Some(global)
                && tag("missioncritical.dev/stamp").is_none()
        }
        _ => false,
    }
}

/// Turns every managed resource group of `graph` that exists without `owner`'s tag into an
/// observed one: it is read, never written or deleted.
pub async fn observe_foreign_groups(
    arm: &ArmClient,
    owners: &GroupOwners,
    graph: &mut DesiredGraph,
    owner: &Owner,
) -> Result<(), AzureError> {
    for r in graph
        .resources
        .iter_mut()
        .filter(|r| r.kind == ResourceKind::ResourceGroup && r.ownership == Ownership::Managed)
    {
        let key = r.id.as_str().to_ascii_lowercase();
        let foreign = match owners.known(&key) {
            Some(foreign) => foreign,
            None => {
                let live = arm.get(r.id.as_str(), r.kind.api_version()).await?;
                match live {
                    // Absent: this operator creates it, with its tag.
                    None => false,
                    Some(live) => {
                        let foreign = !created_for(owner, &live.body["tags"]);
                        owners.record(key, foreign);
                        foreign
                    }
                }
            }
        };
        if foreign {
            *r = crate::plan::DesiredResource::observed(r.id.clone(), r.kind, r.component);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_entry_is_a_stray_unless_wanted_and_tells_when_it_is_being_deleted() {
        let wanted = BTreeSet::from(["/s/x/a".to_string()]);
        assert_eq!(
            stray(&json!({ "id": "/S/X/A", "type": "t" }), &wanted),
            None
        );
        let deleting = stray(
            &json!({ "id": "/s/x/b", "type": "t", "provisioningState": "Deleting" }),
            &wanted,
        )
        .unwrap();
        assert!(deleting.deleting);
        let child = stray(
            &json!({ "id": "/s/x/c", "type": "t", "properties": { "provisioningState": "Succeeded" } }),
            &wanted,
        )
        .unwrap();
        assert!(!child.deleting);
    }

    #[test]
    fn a_group_is_ours_only_with_our_tags() {
        let stamp = Owner::stamp("prod", "weu-blue");
        let global = Owner::global_plane("prod");
        assert!(created_for(&stamp, &stamp.tagged(json!({}))));
        assert!(!created_for(&stamp, &json!({ "team": "payments" })));
        assert!(!created_for(&stamp, &Value::Null));
        let legacy_stamp = json!({ "managed-by": "stamp-operator", "missioncritical.dev/global-plane": "prod", "missioncritical.dev/stamp": "prod/weu-blue" });
        assert!(created_for(&stamp, &legacy_stamp));
        assert!(!created_for(&global, &legacy_stamp));
        let legacy_global =
            json!({ "managed-by": "stamp-operator", "missioncritical.dev/global-plane": "prod" });
        assert!(created_for(&global, &legacy_global));
        assert!(!created_for(&Owner::global_plane("dev"), &legacy_global));
        // Another owner's tag is never taken for the legacy tags.
        assert!(!created_for(
            &global,
            &Owner::global_plane("dev").tagged(legacy_global)
        ));
    }

    #[test]
    fn deletes_speak_the_api_version_of_their_kind() {
        assert_eq!(
            api_version_for(
                "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
                "/x"
            ),
            ResourceKind::RuleCollectionGroup.api_version()
        );
        assert_eq!(
            api_version_for("Microsoft.Cdn/profiles/afdEndpoints/routes", "/x"),
            ResourceKind::FrontDoorRoute.api_version()
        );
    }
}
