//! Kubernetes storage quantities, only as far as comparing sizes needs:
//! a PVC can grow but never shrink, so the plugin must know which of two
//! sizes is larger without a quantity library.

/// Bytes in a quantity such as `10Gi`, `500M` or `1.5Ti`; none if it is not
/// one (exponent forms like `1e3` are not storage sizes anyone writes).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert!(parse_quantity("2Gi") > parse_quantity("2G"));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536.0));
        assert_eq!(parse_quantity("10"), Some(10.0));
        assert_eq!(parse_quantity("10Xi"), None);
        assert_eq!(parse_quantity("Gi"), None);
    }
}
