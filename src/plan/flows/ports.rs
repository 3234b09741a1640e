//! Port lists as NSG and firewall rules write them: `*`, `443`, `10000-20000`.

/// Whether `port` is in `spec` (one entry). An entry that does not parse matches nothing.
pub fn entry_covers(spec: &str, port: u16) -> bool {
    let spec = spec.trim();
    if spec == "*" {
        return true;
    }
    match spec.split_once('-') {
        Some((low, high)) => match (low.trim().parse::<u16>(), high.trim().parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        },
        None => spec.parse::<u16>() == Ok(port),
    }
}

/// Whether any entry of `specs` covers `port`.
pub fn covers<'a>(specs: impl IntoIterator<Item = &'a str>, port: u16) -> bool {
    specs.into_iter().any(|s| entry_covers(s, port))
}

/// Whether `spec` covers every port (what a source-port restriction must be to be ignored).
pub fn is_every_port(spec: &str) -> bool {
    let spec = spec.trim();
    spec == "*" || spec == "0-65535" || spec == "1-65535"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_as_azure_writes_them() {
        assert!(entry_covers("*", 1));
        assert!(entry_covers("443", 443));
        assert!(!entry_covers("443", 444));
        assert!(entry_covers("10000-20000", 10250));
        assert!(!entry_covers("10000-20000", 9999));
        assert!(!entry_covers("https", 443));
        assert!(covers(["80", "443"], 443));
    }
}
