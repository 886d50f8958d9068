//! Kubernetes name rules (apimachinery's validation), for what the schema cannot express:
//! object names, and label keys and values inside maps.

/// A DNS subdomain (RFC 1123): dot-separated DNS labels, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A label value: empty, or up to 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name a non-empty label value.
pub fn is_label_key(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => {
            is_dns_subdomain(prefix) && !name.is_empty() && is_label_value(name)
        }
        None => !key.is_empty() && is_label_value(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(is_dns_subdomain("cortex.example.com"));
        assert!(
            !is_dns_subdomain("Cortex") && !is_dns_subdomain("-a") && !is_dns_subdomain("a..b")
        );
        assert!(is_label_key("kelvin.dev/pool") && is_label_key("team"));
        assert!(
            !is_label_key("kelvin.dev/") && !is_label_key("Bad_Prefix/x") && !is_label_key("/x")
        );
        assert!(is_label_value("") && is_label_value("h100.hall-a_1"));
        assert!(!is_label_value("-a") && !is_label_value(&"a".repeat(64)));
    }
}
