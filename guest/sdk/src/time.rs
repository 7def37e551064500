//! Time as the host keeps it: `sleep` parks the request on a host timer
//! instead of blocking the instance.

use std::time::Duration;

use crate::host;
use crate::op::HostOp;

/// Completes after `duration`, rounded up to whole milliseconds so it
/// never wakes early. Dropping it before then cancels the host timer.
pub async fn sleep(duration: Duration) {
    let ms = whole_millis(duration);
    // A timer has nothing to report beyond having fired.
    let _ = HostOp::new(move || host::start_timer(ms)).await;
}

pub(crate) fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_milliseconds() {
        assert_eq!(whole_millis(Duration::ZERO), 0);
        assert_eq!(whole_millis(Duration::from_micros(1)), 1);
        assert_eq!(whole_millis(Duration::from_micros(1500)), 2);
        assert_eq!(whole_millis(Duration::from_millis(5000)), 5000);
        assert_eq!(whole_millis(Duration::MAX), u64::MAX);
    }
}
