//! How long each kind of operation takes: a realistic profile (Azure Firewall and Front Door
//! take minutes) scaled by a factor so tests finish in seconds, or a zero profile.

use std::time::Duration;

/// Latency profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyProfile {
    /// Multiplies every realistic duration: 1.0 is real time, 0.01 is 100× faster, 0 is instant.
    pub factor: f64,
}

impl LatencyProfile {
    /// Operations complete at once (still through the long-running-operation protocol).
    pub fn zero() -> LatencyProfile {
        LatencyProfile { factor: 0.0 }
    }

    /// Realistic durations multiplied by `factor`.
    pub fn realistic(factor: f64) -> LatencyProfile {
        LatencyProfile {
            factor: factor.max(0.0),
        }
    }

    /// Duration of a write (PUT) of `resource_type`.
    pub fn put(&self, resource_type: &str) -> Duration {
        Duration::from_secs_f64(realistic_put_seconds(resource_type) * self.factor)
    }

    /// Duration of a DELETE of `resource_type` (Azure deletes roughly as slowly as it creates).
    pub fn delete(&self, resource_type: &str) -> Duration {
        self.put(resource_type)
    }
}

/// Typical seconds a PUT of each type takes in Azure.
pub fn realistic_put_seconds(resource_type: &str) -> f64 {
    match resource_type.to_ascii_lowercase().as_str() {
        "microsoft.resources/resourcegroups" => 1.0,
        "microsoft.network/virtualnetworks" | "microsoft.network/virtualnetworks/subnets" => 6.0,
        "microsoft.network/networksecuritygroups" | "microsoft.network/routetables" => 4.0,
        "microsoft.network/publicipaddresses" => 5.0,
        "microsoft.network/firewallpolicies" => 12.0,
        "microsoft.network/firewallpolicies/rulecollectiongroups" => 25.0,
        "microsoft.network/azurefirewalls" => 360.0,
        "microsoft.network/privatelinkservices" => 20.0,
        "microsoft.network/privateendpoints" => 40.0,
        "microsoft.network/privateendpoints/privatednszonegroups" => 10.0,
        "microsoft.network/privatednszones" => 30.0,
        "microsoft.network/privatednszones/virtualnetworklinks" => 35.0,
        "microsoft.network/frontdoorwebapplicationfirewallpolicies" => 25.0,
        "microsoft.cdn/profiles" => 90.0,
        "microsoft.cdn/profiles/afdendpoints" => 40.0,
        "microsoft.cdn/profiles/origingroups" => 15.0,
        "microsoft.cdn/profiles/origingroups/origins" => 120.0,
        "microsoft.cdn/profiles/afdendpoints/routes" => 60.0,
        "microsoft.cdn/profiles/securitypolicies" => 45.0,
        _ => 2.0,
    }
}

/// The soonest any client can find a PUT of `resource_type` of use, in real seconds: when it
/// ends — and for a Front Door origin, once its connection request has reached the Private
/// Link Service (see `EmulatorConfig::front_door_request_seconds`). (Azure's `Retry-After` does
/// not add to it: a group listing can show an operation ended before its next poll is due.)
pub fn observable_put_seconds(resource_type: &str) -> f64 {
    let took = realistic_put_seconds(resource_type);
    if resource_type.eq_ignore_ascii_case("microsoft.cdn/profiles/origingroups/origins") {
        took + super::state::EmulatorConfig::default().front_door_request_seconds
    } else {
        took
    }
}
