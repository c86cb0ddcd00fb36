//! Kubernetes resource quantities (`500m`, `2`, `512Mi`, `1Gi`, `1e3`) to cgroup values.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// The CFS period every cpu limit is expressed against (the kubelet's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Parses a quantity into its value scaled by 1000 (milli-units), rounding up like the kubelet.
fn parse_milli(q: &str) -> Result<u128, QuantityError> {
    let err = || QuantityError(q.to_string());
    let s = q.trim();
    let (num, mult_num, mult_den): (&str, u128, u128) = {
        const SUFFIXES: [(&str, u128, u128); 13] = [
            ("Ki", 1 << 10, 1),
            ("Mi", 1 << 20, 1),
            ("Gi", 1 << 30, 1),
            ("Ti", 1 << 40, 1),
            ("Pi", 1 << 50, 1),
            ("Ei", 1 << 60, 1),
            ("n", 1, 1_000_000_000),
            ("u", 1, 1_000_000),
            ("m", 1, 1000),
            ("k", 1000, 1),
            ("M", 1_000_000, 1),
            ("G", 1_000_000_000, 1),
            ("T", 1_000_000_000_000, 1),
        ];
        let mut found = None;
        for (suf, n, d) in SUFFIXES {
            if let Some(rest) = s.strip_suffix(suf) {
                found = Some((rest, n, d));
                break;
            }
        }
        match found {
            Some(f) => f,
            None => {
                if let Some(rest) = s.strip_suffix('P') {
                    (rest, 1_000_000_000_000_000, 1)
                } else if let Some(rest) = s.strip_suffix('E') {
                    (rest, 1_000_000_000_000_000_000, 1)
                } else {
                    (s, 1, 1)
                }
            }
        }
    };
    let (mantissa, exp) = match num.find(['e', 'E']) {
        Some(i) => (&num[..i], num[i + 1..].parse::<i32>().map_err(|_| err())?),
        None => (num, 0),
    };
    let mantissa = mantissa.strip_prefix('+').unwrap_or(mantissa);
    if mantissa.is_empty() || mantissa.starts_with('-') {
        return Err(err());
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
        || (int.is_empty() && frac.is_empty())
    {
        return Err(err());
    }
    // value = digits * 10^(exp - frac.len()) * mult_num / mult_den, times 1000 for milli.
    let digits: u128 = format!("{int}{frac}").parse().map_err(|_| err())?;
    let scale = exp - frac.len() as i32 + 3;
    let mut num_v = digits.checked_mul(mult_num).ok_or_else(err)?;
    let mut den_v = mult_den;
    if scale >= 0 {
        num_v = num_v
            .checked_mul(10u128.checked_pow(scale as u32).ok_or_else(err)?)
            .ok_or_else(err)?;
    } else {
        den_v = den_v
            .checked_mul(10u128.checked_pow((-scale) as u32).ok_or_else(err)?)
            .ok_or_else(err)?;
    }
    Ok(num_v.div_ceil(den_v))
}

/// CPU quantity to a CFS quota in microseconds per [`CPU_PERIOD_US`] (minimum 1 ms, as the
/// kernel refuses less).
pub fn cpu_quota_us(q: &str) -> Result<u64, QuantityError> {
    let milli = parse_milli(q)?;
    let quota = (milli * u128::from(CPU_PERIOD_US)).div_ceil(1000);
    u64::try_from(quota.max(1000)).map_err(|_| QuantityError(q.to_string()))
}

/// Memory quantity to bytes (rounded up).
pub fn memory_bytes(q: &str) -> Result<u64, QuantityError> {
    let milli = parse_milli(q)?;
    u64::try_from(milli.div_ceil(1000)).map_err(|_| QuantityError(q.to_string()))
}

/// Limits for one pod, ready to be written to cgroup files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu_quota_us: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids_max: Option<u64>,
}

impl Limits {
    /// The v2 `cpu.max` line.
    pub fn cpu_max_v2(&self) -> String {
        match self.cpu_quota_us {
            Some(q) => format!("{q} {CPU_PERIOD_US}"),
            None => format!("max {CPU_PERIOD_US}"),
        }
    }

    /// The v2 `memory.max` value.
    pub fn memory_max_v2(&self) -> String {
        self.memory_bytes
            .map_or_else(|| "max".to_string(), |b| b.to_string())
    }

    pub fn pids_max(&self) -> String {
        self.pids_max
            .map_or_else(|| "max".to_string(), |p| p.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_quota_us("500m"), Ok(50_000));
        assert_eq!(cpu_quota_us("2"), Ok(200_000));
        assert_eq!(cpu_quota_us("0.5"), Ok(50_000));
        assert_eq!(cpu_quota_us("1.5"), Ok(150_000));
        assert_eq!(cpu_quota_us("1m"), Ok(1000));
        assert_eq!(cpu_quota_us("1e-1"), Ok(10_000));
        assert!(cpu_quota_us("abc").is_err());
        assert!(cpu_quota_us("-1").is_err());
        assert!(cpu_quota_us("").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(memory_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("128974848"), Ok(128_974_848));
        assert_eq!(memory_bytes("129e6"), Ok(129_000_000));
        assert_eq!(memory_bytes("123k"), Ok(123_000));
        assert_eq!(memory_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(memory_bytes("1500m"), Ok(2));
        assert!(memory_bytes("12Qi").is_err());
    }

    #[test]
    fn v2_lines() {
        let l = Limits {
            cpu_quota_us: Some(50_000),
            memory_bytes: None,
            pids_max: Some(4096),
        };
        assert_eq!(l.cpu_max_v2(), "50000 100000");
        assert_eq!(l.memory_max_v2(), "max");
        assert_eq!(l.pids_max(), "4096");
        assert_eq!(Limits::default().cpu_max_v2(), "max 100000");
    }
}
