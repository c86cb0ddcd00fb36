//! `maxUnavailable` resolution and `capacitySpec` validation.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::pool::CapacitySpec;

/// The budget used when a strategy leaves `maxUnavailable` unset.
pub const DEFAULT_MAX_UNAVAILABLE_PERCENT: u64 = 25;

/// Parses a `maxUnavailable` against `base`: an integer is a count, a string must be a
/// percentage (`"25%"`) which rounds up. The result may be 0; see [`resolve_max_unavailable`].
pub fn parse_max_unavailable(v: &IntOrString, base: u32) -> Result<u32, String> {
    match v {
        IntOrString::Int(n) => {
            u32::try_from(*n).map_err(|_| format!("invalid value {n}: must not be negative"))
        }
        IntOrString::String(s) => {
            let percent = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    format!("invalid value {s:?}: must be an integer or a percentage like \"25%\"")
                })?;
            let percent = u64::try_from(percent)
                .map_err(|_| format!("invalid value {s:?}: must not be negative"))?;
            Ok(percent_of_rounding_up(percent, base))
        }
    }
}

fn percent_of_rounding_up(percent: u64, base: u32) -> u32 {
    let scaled = (percent * u64::from(base)).div_ceil(100);
    u32::try_from(scaled).unwrap_or(u32::MAX)
}

/// Resolves a `maxUnavailable` against `base`: default `"25%"`, percentages round up, and the
/// result is at least 1 (so `"0"`, `0` and unparsable values all give 1: progress never stops).
pub fn resolve_max_unavailable(v: Option<&IntOrString>, base: u32) -> u32 {
    let resolved = match v {
        None => percent_of_rounding_up(DEFAULT_MAX_UNAVAILABLE_PERCENT, base),
        Some(v) => parse_max_unavailable(v, base).unwrap_or(1),
    };
    resolved.max(1)
}

/// Checks the cross-field rules of a `capacitySpec`; the message names the offending field.
pub fn validate_capacity(c: &CapacitySpec) -> Result<(), String> {
    let fields = [
        ("bufferMax", c.buffer_max),
        ("bufferMin", c.buffer_min),
        ("poolMax", c.pool_max),
        ("poolMin", c.pool_min),
    ];
    if let Some((name, value)) = fields.iter().find(|(_, v)| *v < 0) {
        return Err(format!(
            "capacitySpec.{name} must be non-negative, got {value}"
        ));
    }
    if c.buffer_min > c.buffer_max {
        return Err(format!(
            "capacitySpec.bufferMin ({}) must be less than or equal to bufferMax ({})",
            c.buffer_min, c.buffer_max
        ));
    }
    if c.pool_min > c.pool_max {
        return Err(format!(
            "capacitySpec.poolMin ({}) must be less than or equal to poolMax ({})",
            c.pool_min, c.pool_max
        ));
    }
    Ok(())
}

/// A `capacitySpec` made consistent: negatives become 0, and when a minimum exceeds its
/// maximum the maximum wins (an invalid spec keeps a bounded pool rather than freezing it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub buffer_min: u32,
    pub buffer_max: u32,
    pub pool_min: u32,
    pub pool_max: u32,
}

impl Capacity {
    /// The effective bounds of `c`.
    pub fn effective(c: &CapacitySpec) -> Self {
        let non_negative = |v: i32| u32::try_from(v).unwrap_or(0);
        let buffer_max = non_negative(c.buffer_max);
        let pool_max = non_negative(c.pool_max);
        Self {
            buffer_min: non_negative(c.buffer_min).min(buffer_max),
            buffer_max,
            pool_min: non_negative(c.pool_min).min(pool_max),
            pool_max,
        }
    }

    /// The buffer to aim for given the current one: kept while within bounds, otherwise the
    /// midpoint, which gives hysteresis so small swings in demand do not cause churn.
    pub fn desired_buffer(&self, buffer: u32) -> u32 {
        if (self.buffer_min..=self.buffer_max).contains(&buffer) {
            buffer
        } else {
            (self.buffer_min + self.buffer_max) / 2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.to_string())
    }

    #[test]
    fn resolution_table() {
        assert_eq!(resolve_max_unavailable(Some(&pct("25%")), 10), 3);
        assert_eq!(resolve_max_unavailable(Some(&pct("25%")), 4), 1);
        assert_eq!(resolve_max_unavailable(Some(&pct("50%")), 10), 5);
        assert_eq!(resolve_max_unavailable(Some(&IntOrString::Int(3)), 10), 3);
        assert_eq!(resolve_max_unavailable(Some(&pct("0")), 10), 1);
        assert_eq!(resolve_max_unavailable(Some(&pct("10%")), 9), 1);
    }

    #[test]
    fn default_is_25_percent_rounded_up() {
        assert_eq!(resolve_max_unavailable(None, 10), 3);
        assert_eq!(resolve_max_unavailable(None, 1), 1);
        assert_eq!(resolve_max_unavailable(None, 0), 1);
    }

    #[test]
    fn zero_negative_and_garbage_give_one() {
        assert_eq!(resolve_max_unavailable(Some(&IntOrString::Int(0)), 10), 1);
        assert_eq!(resolve_max_unavailable(Some(&IntOrString::Int(-4)), 10), 1);
        assert_eq!(resolve_max_unavailable(Some(&pct("0%")), 10), 1);
        assert_eq!(resolve_max_unavailable(Some(&pct("abc")), 10), 1);
        assert_eq!(resolve_max_unavailable(Some(&pct("2.5%")), 10), 1);
        assert!(parse_max_unavailable(&pct("0"), 10).is_err());
        assert!(parse_max_unavailable(&pct("-5%"), 10).is_err());
        assert!(parse_max_unavailable(&IntOrString::Int(-1), 10).is_err());
        assert_eq!(resolve_max_unavailable(Some(&pct("-5%")), 10), 1);
        assert_eq!(parse_max_unavailable(&IntOrString::Int(0), 10), Ok(0));
    }

    #[test]
    fn large_percent_and_count_are_kept() {
        assert_eq!(resolve_max_unavailable(Some(&pct("100%")), 7), 7);
        assert_eq!(resolve_max_unavailable(Some(&pct("150%")), 10), 15);
        assert_eq!(resolve_max_unavailable(Some(&IntOrString::Int(50)), 3), 50);
    }

    fn spec(buffer_min: i32, buffer_max: i32, pool_min: i32, pool_max: i32) -> CapacitySpec {
        CapacitySpec {
            buffer_max,
            buffer_min,
            pool_max,
            pool_min,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate_capacity(&spec(1, 2, 0, 5)).is_ok());
        assert!(validate_capacity(&spec(0, 0, 0, 0)).is_ok());
        let err = validate_capacity(&spec(3, 2, 0, 5)).unwrap_err();
        assert!(err.contains("bufferMin"), "{err}");
        let err = validate_capacity(&spec(1, 2, 6, 5)).unwrap_err();
        assert!(err.contains("poolMin"), "{err}");
        let err = validate_capacity(&spec(1, 2, 0, -1)).unwrap_err();
        assert!(err.contains("poolMax"), "{err}");
    }

    #[test]
    fn effective_capacity_lets_maxima_win() {
        let c = Capacity::effective(&spec(5, 2, 9, 4));
        assert_eq!(
            (c.buffer_min, c.buffer_max, c.pool_min, c.pool_max),
            (2, 2, 4, 4)
        );
        let c = Capacity::effective(&spec(-1, -1, -1, -1));
        assert_eq!(
            (c.buffer_min, c.buffer_max, c.pool_min, c.pool_max),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn desired_buffer_keeps_in_range_and_aims_at_midpoint_outside() {
        let c = Capacity::effective(&spec(2, 6, 0, 100));
        assert_eq!(c.desired_buffer(3), 3);
        assert_eq!(c.desired_buffer(2), 2);
        assert_eq!(c.desired_buffer(6), 6);
        assert_eq!(c.desired_buffer(0), 4);
        assert_eq!(c.desired_buffer(9), 4);
    }
}
