//! Kubernetes resource quantities (`100m`, `1`, `256Mi`, `1G`, `1e3`) as exact integers.

/// A quantity string that is not a valid non-negative Kubernetes quantity.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// Nano-units per unit: quantities are compared as integer nano-units.
pub const NANO: i128 = 1_000_000_000;

/// Parses a quantity into nano-units (`"100m"` = 100_000_000, `"1Ki"` = 1024 × 10^9), rounding
/// sub-nano fractions up as the API server does.
pub fn parse_quantity(raw: &str) -> Result<i128, QuantityError> {
    let err = || QuantityError(raw.to_string());
    let s = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err());
    }
    let (pow10, pow2) = suffix_powers(suffix).ok_or_else(err)?;
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().map_err(|_| err())?;
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| err())?;
    let scaled = mantissa.checked_mul(1i128 << pow2).ok_or_else(err)?;
    scale(scaled, 9 + pow10 - frac_len).ok_or_else(err)
}

/// `(power of ten, power of two)` of a suffix or decimal exponent.
fn suffix_powers(suffix: &str) -> Option<(i32, u32)> {
    let decimal = |p: i32| Some((p, 0));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let exp: i32 = exp.parse().ok()?;
            (exp.abs() <= 30).then_some((exp, 0))
        }
    }
}

/// `value × 10^pow`, rounding a division up.
fn scale(value: i128, pow: i32) -> Option<i128> {
    let factor = 10i128.checked_pow(pow.unsigned_abs())?;
    if pow >= 0 {
        value.checked_mul(factor)
    } else {
        Some((value + factor - 1) / factor)
    }
}

/// A nano-unit amount for messages (`0.5`, `2`, `268435456`).
pub fn display(nanos: i128) -> String {
    let whole = nanos / NANO;
    let frac = nanos % NANO;
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:09}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}
