//! The text forms of setting values, one grammar for the command line and
//! the manifest.

use std::net::SocketAddr;
use std::time::Duration;

use super::{MAX_BUSY_POLL, MAX_SCHED_SLICE, MIN_SCHED_SLICE};

/// Sizes like `10MiB`, `512KiB`, `1GB` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 10MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!(
                "`{text}` is not a size like 10MiB (use a whole number of a smaller unit)"
            ))
        }
        _ => {
            return Err(format!(
                "`{text}` is not a size like 10MiB (unknown unit `{}`; use KiB, MiB or GiB)",
                unit.trim()
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A size of something in this process's memory; beyond the address space
/// it means "no limit".
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    parse_size(text).map(saturate)
}

pub(crate) fn saturate(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// A busy-poll budget: a duration up to [`MAX_BUSY_POLL`].
pub fn parse_busy_poll(text: &str) -> Result<Duration, String> {
    let budget = humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration like 15us ({err})"))?;
    if budget > MAX_BUSY_POLL {
        return Err(format!(
            "`{text}` is longer than {MAX_BUSY_POLL:?}, past which polling only burns CPU"
        ));
    }
    Ok(budget)
}

/// A scheduling slice: `0s` (the kernel's default) or a duration the
/// kernel accepts, from [`MIN_SCHED_SLICE`] to [`MAX_SCHED_SLICE`].
pub fn parse_sched_slice(text: &str) -> Result<Duration, String> {
    let slice = humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration like 100us ({err})"))?;
    if !slice.is_zero() && !(MIN_SCHED_SLICE..=MAX_SCHED_SLICE).contains(&slice) {
        return Err(format!(
            "`{text}` is outside {MIN_SCHED_SLICE:?}..={MAX_SCHED_SLICE:?}, the slices Linux \
             accepts; 0s keeps its default"
        ));
    }
    Ok(slice)
}

/// The admin API's address, or `off` (`None`).
pub fn parse_admin(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:8013, or `off`"))
}

/// The health listener's address, or `off` (`None`).
pub fn parse_health(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("`{text}` is not an address like 0.0.0.0:8014, or `off`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(
            parse_size("5 parsecs"),
            Err("`5 parsecs` is not a size like 10MiB (unknown unit `parsecs`; use KiB, MiB or GiB)".to_string())
        );
        assert_eq!(
            parse_size("1.5GiB"),
            Err(
                "`1.5GiB` is not a size like 10MiB (use a whole number of a smaller unit)"
                    .to_string()
            )
        );
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert_eq!(
            parse_size("17179869184GiB"),
            Err("`17179869184GiB` is too large".to_string())
        );
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
    }

    #[test]
    fn sched_slice_is_zero_or_what_linux_accepts() {
        assert_eq!(parse_sched_slice("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_sched_slice("100us"), Ok(MIN_SCHED_SLICE));
        assert_eq!(parse_sched_slice("3ms"), Ok(Duration::from_millis(3)));
        assert_eq!(parse_sched_slice("100ms"), Ok(MAX_SCHED_SLICE));
        for hostile in [
            "99us",
            "1ns",
            "101ms",
            "1000000000000h",
            "-1ms",
            "100",
            "",
            "fast",
        ] {
            assert!(parse_sched_slice(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn busy_poll_is_bounded() {
        assert_eq!(parse_busy_poll("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_busy_poll("1ms"), Ok(MAX_BUSY_POLL));
        assert!(parse_busy_poll("1001us").is_err());
        assert!(parse_busy_poll("15").is_err());
        assert!(parse_busy_poll("").is_err());
    }

    #[test]
    fn admin_is_an_address_or_off() {
        assert_eq!(parse_admin("OFF"), Ok(None));
        assert_eq!(
            parse_admin("127.0.0.1:9"),
            Ok(Some("127.0.0.1:9".parse().unwrap()))
        );
        for bad in ["on", "", "localhost:1", "127.0.0.1"] {
            assert!(parse_admin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_is_an_address_or_off() {
        assert_eq!(parse_health("off"), Ok(None));
        assert_eq!(
            parse_health("[::]:8014"),
            Ok(Some("[::]:8014".parse().unwrap()))
        );
        for bad in [
            "on",
            "",
            " 0.0.0.0:8014",
            "0.0.0.0",
            ":8014",
            "0.0.0.0:99999",
            "/readyz",
        ] {
            let err = parse_health(bad).unwrap_err();
            assert!(
                err.contains("is not an address like 0.0.0.0:8014"),
                "{bad}: {err}"
            );
        }
    }
}
