//! Kubernetes quantities (`50k`, `50000`, `1.5Gi`, `100m`) compared by value: the API server
//! stores built-in objects' quantities in canonical form (a ResourceQuota's `50000` comes back
//! as `50k`), so comparing their text would see a change that is none and re-apply forever.

/// The value of quantity `text` in billionths (exact for every suffix down to `n`), or `None`
/// when it is not a quantity.
pub fn nanos(text: &str) -> Option<i128> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction_nanos: i128 = format!("{fraction:0<9}").parse().ok()?;
    let base = whole
        .checked_mul(1_000_000_000)?
        .checked_add(fraction_nanos)?;
    let scaled = match suffix {
        "" => Some(base),
        "n" => divide(base, 1_000_000_000),
        "u" => divide(base, 1_000_000),
        "m" => divide(base, 1_000),
        "k" => base.checked_mul(1_000),
        "M" => base.checked_mul(1_000_000),
        "G" => base.checked_mul(1_000_000_000),
        "T" => base.checked_mul(1_000_000_000_000),
        "P" => base.checked_mul(1_000_000_000_000_000),
        "E" => base.checked_mul(1_000_000_000_000_000_000),
        "Ki" => base.checked_mul(1 << 10),
        "Mi" => base.checked_mul(1 << 20),
        "Gi" => base.checked_mul(1 << 30),
        "Ti" => base.checked_mul(1 << 40),
        "Pi" => base.checked_mul(1 << 50),
        "Ei" => base.checked_mul(1 << 60),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let power: i32 = digits.parse().ok()?;
            if power >= 0 {
                base.checked_mul(10i128.checked_pow(u32::try_from(power).ok()?)?)
            } else {
                divide(base, 10i128.checked_pow(power.unsigned_abs())?)
            }
        }
    }?;
    Some(sign * scaled)
}

/// `value / by`, when exact (a quantity finer than a billionth is not one Kelvin writes).
fn divide(value: i128, by: i128) -> Option<i128> {
    (value % by == 0).then(|| value / by)
}

/// Whether two texts are the same quantity (both must be quantities).
pub fn same(a: &str, b: &str) -> bool {
    matches!((nanos(a), nanos(b)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_plain_forms_are_the_same_quantity() {
        // What the API server did to examples/cortex's tenant quotas.
        assert!(same("50000", "50k"));
        assert!(same("20000", "20k"));
        assert!(same("1500", "1.5k"));
        assert!(same("1Gi", "1073741824"));
        assert!(same("100m", "0.1"));
        assert!(same("1e3", "1k"));
        assert!(same("-2", "-2000m"));
        assert!(!same("50000", "5k"));
        assert!(!same("1Ki", "1k"));
    }

    #[test]
    fn text_that_is_no_quantity_is_never_the_same() {
        for text in ["", "k", "abc", "1.2.3", "1x", "--1", "1.0000000001"] {
            assert_eq!(nanos(text), None, "{text}");
        }
        assert!(
            !same("training", "training"),
            "not quantities: compared as text elsewhere"
        );
    }
}
