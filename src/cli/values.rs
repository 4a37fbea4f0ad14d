//! Value parsers for flags: durations (`180`, `500ms`, `3m`) and byte sizes (`256MiB`).

use std::time::Duration;

/// Parse a duration: plain seconds (`180`, `0.5`) or with a unit (`500ms`, `180s`, `3m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{text:?} is not a valid number of seconds"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!(
            "{text:?} is not a duration ({e}); use seconds like 180 or a unit like 500ms, 30s, 3m"
        )
    })
}

/// Parse a byte count with an optional unit (`1048576`, `512KiB`, `256MiB`, `1GiB`).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| {
        format!("{text:?} is not a byte size ({e}); use a number with an optional unit like 256MiB")
    })?;
    let n = usize::try_from(size.as_u64()).map_err(|_| format!("{text:?} is too large"))?;
    if n == 0 {
        return Err("the size must be greater than zero".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("180"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("180s"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn byte_sizes_accept_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("256MiB"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_bytes("1 KiB"), Ok(1024));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("lots").is_err());
    }
}
