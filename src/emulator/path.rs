//! ARM request paths as the emulator understands them. Deliberately its own parser: the emulator
//! shares no code with the operator, so a bug in one cannot hide the same bug in the other.

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The id exactly as requested (no query, no trailing slash).
    pub id: String,
    /// Subscription id.
    pub subscription: String,
    /// Resource group name; `None` for subscription-level paths.
    pub resource_group: Option<String>,
    /// Full type: `Microsoft.Network/virtualNetworks/subnets`; `Microsoft.Resources/resourceGroups`
    /// for a group.
    pub resource_type: String,
    /// Name of the resource (last segment).
    pub name: String,
    /// The parent resource's id, for child resources.
    pub parent: Option<String>,
}

impl ResourcePath {
    /// Key used to store the resource: ARM ids are case-insensitive.
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }

    /// The resource group's id.
    pub fn group_id(&self) -> Option<String> {
        self.resource_group
            .as_ref()
            .map(|rg| format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription))
    }

    /// Namespace of the type (`Microsoft.Network`).
    pub fn namespace(&self) -> &str {
        self.resource_type.split('/').next().unwrap_or_default()
    }

    /// Whether the type is `t`, ignoring case.
    pub fn is(&self, t: &str) -> bool {
        self.resource_type.eq_ignore_ascii_case(t)
    }
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One resource (or resource group).
    Resource(ResourcePath),
    /// `GET /subscriptions/{s}/resourceGroups/{rg}/resources`.
    GroupListing {
        subscription: String,
        resource_group: String,
    },
    /// `GET …/providers/{ns}/{type}`: a collection of one type in a group; or
    /// `GET {parent}/{childType}`: the children of one type of a resource (`parent` set).
    Collection {
        subscription: String,
        resource_group: String,
        resource_type: String,
        parent: Option<String>,
    },
    /// An operation status (`Azure-AsyncOperation`) or result (`Location`) URL.
    Operation { id: String, result: bool },
}

/// Parses `path` (without query string).
pub fn parse(path: &str) -> Option<Target> {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts.len() < 3
        || !parts[0].is_empty()
        || !parts[1].eq_ignore_ascii_case("subscriptions")
        || parts[2].is_empty()
    {
        return None;
    }
    let subscription = parts[2].to_string();
    // /subscriptions/{s}/providers/{ns}/locations/{loc}/operations|operationStatuses|
    // operationResults/{id}
    if parts.len() == 9
        && parts[3].eq_ignore_ascii_case("providers")
        && parts[5].eq_ignore_ascii_case("locations")
    {
        let result = parts[7].eq_ignore_ascii_case("operationResults");
        if result
            || parts[7].eq_ignore_ascii_case("operationStatuses")
            || parts[7].eq_ignore_ascii_case("operations")
        {
            return Some(Target::Operation {
                id: parts[8].to_string(),
                result,
            });
        }
        return None;
    }
    if parts.len() < 5 || !parts[3].eq_ignore_ascii_case("resourceGroups") || parts[4].is_empty() {
        return None;
    }
    let resource_group = parts[4].to_string();
    // /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/
    // privateDnsOperationStatuses|privateDnsOperationResults/{id}
    if parts.len() == 9 && parts[5].eq_ignore_ascii_case("providers") {
        let result = parts[7].eq_ignore_ascii_case("privateDnsOperationResults");
        if result || parts[7].eq_ignore_ascii_case("privateDnsOperationStatuses") {
            return Some(Target::Operation {
                id: parts[8].to_string(),
                result,
            });
        }
    }
    if parts.len() == 5 {
        return Some(Target::Resource(ResourcePath {
            id: trimmed.to_string(),
            subscription,
            resource_group: Some(resource_group.clone()),
            resource_type: "Microsoft.Resources/resourceGroups".into(),
            name: resource_group,
            parent: None,
        }));
    }
    if parts.len() == 6 && parts[5].eq_ignore_ascii_case("resources") {
        return Some(Target::GroupListing {
            subscription,
            resource_group,
        });
    }
    if !parts[5].eq_ignore_ascii_case("providers") || parts.len() < 8 {
        return None;
    }
    let rest = &parts[6..];
    if rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    // rest = ns, type, name, [childType, childName]...
    if rest.len().is_multiple_of(2) {
        let mut resource_type = rest[0].to_string();
        for t in rest[1..].iter().step_by(2) {
            resource_type.push('/');
            resource_type.push_str(t);
        }
        let parent = (rest.len() > 2).then(|| parts[..parts.len() - 1].join("/"));
        return Some(Target::Collection {
            subscription,
            resource_group,
            resource_type,
            parent,
        });
    }
    let mut resource_type = rest[0].to_string();
    for t in rest[1..].iter().step_by(2) {
        resource_type.push('/');
        resource_type.push_str(t);
    }
    let name = rest[rest.len() - 1].to_string();
    let parent = (rest.len() > 3).then(|| parts[..parts.len() - 2].join("/"));
    Some(Target::Resource(ResourcePath {
        id: trimmed.to_string(),
        subscription,
        resource_group: Some(resource_group),
        resource_type,
        name,
        parent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resources_children_groups_and_operations() {
        let Some(Target::Resource(p)) = parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a") else { panic!() };
        assert_eq!(p.resource_type, "Microsoft.Network/virtualNetworks/subnets");
        assert_eq!(p.name, "a");
        assert_eq!(
            p.parent.as_deref(),
            Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
            )
        );
        let Some(Target::Resource(g)) = parse("/subscriptions/s/resourcegroups/rg") else {
            panic!()
        };
        assert_eq!(g.resource_type, "Microsoft.Resources/resourceGroups");
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/resources"),
            Some(Target::GroupListing {
                subscription: "s".into(),
                resource_group: "rg".into()
            })
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.Network/locations/westeurope/operationStatuses/abc"),
            Some(Target::Operation { id: "abc".into(), result: false })
        );
        assert!(parse("/foo").is_none());
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets"),
            Some(Target::Collection {
                subscription: "s".into(),
                resource_group: "rg".into(),
                resource_type: "Microsoft.Network/virtualNetworks/subnets".into(),
                parent: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v".into()),
            })
        );
    }
}
