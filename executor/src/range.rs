//! `Range: bytes=...` parsing (first range only, Go `http.ParseRange` semantics).

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive end.
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// The first satisfiable range.
    Partial(ByteRange),
    /// Syntactically fine but no range overlaps the content.
    NoOverlap,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid range")]
pub struct InvalidRange;

/// Parses a Range header against a content of `size` bytes. Ranges that start past the
/// end are dropped; the first remaining one is returned.
pub fn parse_range(header: &str, size: u64) -> Result<RangeOutcome, InvalidRange> {
    let spec = header.trim().strip_prefix("bytes=").ok_or(InvalidRange)?;
    let mut first = None;
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (a, b) = part.split_once('-').ok_or(InvalidRange)?;
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            let n: u64 = b.parse().map_err(|_| InvalidRange)?;
            if n == 0 || size == 0 {
                None
            } else {
                let n = n.min(size);
                Some(ByteRange {
                    start: size - n,
                    end: size - 1,
                })
            }
        } else {
            let start: u64 = a.parse().map_err(|_| InvalidRange)?;
            let end = if b.is_empty() {
                None
            } else {
                let end: u64 = b.parse().map_err(|_| InvalidRange)?;
                if start > end {
                    return Err(InvalidRange);
                }
                Some(end)
            };
            if start >= size {
                None
            } else {
                let end = end.map_or(size - 1, |e| e.min(size - 1));
                Some(ByteRange { start, end })
            }
        };
        if first.is_none() {
            first = range;
        }
    }
    Ok(first.map_or(RangeOutcome::NoOverlap, RangeOutcome::Partial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(start: u64, end: u64) -> Result<RangeOutcome, InvalidRange> {
        Ok(RangeOutcome::Partial(ByteRange { start, end }))
    }

    #[test]
    fn forms() {
        assert_eq!(parse_range("bytes=0-4", 10), p(0, 4));
        assert_eq!(parse_range("bytes=5-", 10), p(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), p(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), p(0, 9));
        assert_eq!(parse_range("bytes=8-100", 10), p(8, 9));
        assert_eq!(parse_range("bytes=2-3, 5-6", 10), p(2, 3));
    }

    #[test]
    fn past_eof_is_dropped() {
        assert_eq!(parse_range("bytes=20-30", 10), Ok(RangeOutcome::NoOverlap));
        assert_eq!(parse_range("bytes=20-30,1-2", 10), p(1, 2));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "bytes=a-b",
            "items=0-1",
            "bytes=5-1",
            "bytes=1",
            "bytes=--1",
            "0-1",
        ] {
            assert_eq!(parse_range(bad, 10), Err(InvalidRange), "{bad}");
        }
    }
}
