//! Storage sizes as Kubernetes writes them (`10Gi`, `500M`, `1.5Ti`), in
//! whole bytes. Growing a volume means adding a step to the cluster's size
//! and writing the sum back, so unlike a comparison-only parser this one
//! must also format; integers keep `1Gi + 512Mi` exactly `1536Mi`.

/// Binary suffixes, largest first, for [`format_bytes`].
const BINARY: [(&str, u128); 5] = [
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];

/// Bytes in a quantity such as `10Gi`, `500M`, `1.5Ti` or `1073741824`;
/// none if it is not one. Fractions round up to a whole byte. Exponent
/// forms (`1e9`) and milli-bytes are not storage sizes anyone writes.
pub fn parse_bytes(q: &str) -> Option<u128> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        _ => BINARY.iter().find(|(s, _)| *s == suffix)?.1,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 18 {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut bytes = whole.checked_mul(factor)?;
    if !frac.is_empty() {
        let scale = 10u128.pow(frac.len() as u32);
        let part = frac.parse::<u128>().ok()?.checked_mul(factor)?;
        bytes = bytes.checked_add(part.div_ceil(scale))?;
    }
    Some(bytes)
}

/// Bytes in the largest binary unit that holds them exactly (`1536Mi`),
/// else plain bytes: the form `kubectl` users read and the API server
/// keeps as written.
pub fn format_bytes(bytes: u128) -> String {
    if bytes > 0 {
        for (suffix, factor) in BINARY {
            if bytes.is_multiple_of(factor) {
                return format!("{}{suffix}", bytes / factor);
            }
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("1Gi"), Some(1 << 30));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("1.5Ki"), Some(1536));
        assert_eq!(
            parse_bytes("0.5"),
            Some(1),
            "a fraction of a byte rounds up"
        );
        assert_eq!(parse_bytes("10"), Some(10));
        for bad in ["", "Gi", "10Xi", "1.2.3Gi", "-1Gi", "1e9", ".", "1 Gi"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_bytes(2 << 30), "2Gi");
        assert_eq!(format_bytes((1 << 30) + (512 << 20)), "1536Mi");
        assert_eq!(format_bytes(1_000_000_000), "1000000000");
        assert_eq!(format_bytes(0), "0");
        for q in ["7Gi", "3Ti", "100Mi", "5Ki"] {
            assert_eq!(format_bytes(parse_bytes(q).unwrap()), q);
        }
    }
}
