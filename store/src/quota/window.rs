//! Quota windows on the calendar: which window an instant falls in, and when it ends.
//!
//! Windows are aligned (UTC): seconds, minutes, hours and days on multiples of their
//! length since the Unix epoch, months on the first of the month. The proposing node
//! computes them from its own clock and carries them in the command, so apply never reads
//! a clock.

use crate::model::QuotaWindow;

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `[start, end)` in Unix milliseconds of the window holding `now_ms`. A fixed budget is
/// one window from 0 to `u64::MAX`.
pub fn bounds(window: QuotaWindow, now_ms: u64) -> (u64, u64) {
    let aligned = |len: u64| {
        let start = now_ms - now_ms % len;
        (start, start.saturating_add(len))
    };
    match window {
        QuotaWindow::Second => aligned(SECOND),
        QuotaWindow::Minute => aligned(MINUTE),
        QuotaWindow::Hour => aligned(HOUR),
        QuotaWindow::Day => aligned(DAY),
        QuotaWindow::Month => {
            let (y, m, _) = civil_from_days((now_ms / DAY) as i64);
            let start = days_from_civil(y, m, 1) as u64 * DAY;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = days_from_civil(ny, nm, 1) as u64 * DAY;
            (start, end)
        }
        QuotaWindow::Fixed => (0, u64::MAX),
    }
}

/// How long windows of this kind last at most (the retention unit for old counters).
pub fn nominal_len_ms(window: QuotaWindow) -> u64 {
    match window {
        QuotaWindow::Second => SECOND,
        QuotaWindow::Minute => MINUTE,
        QuotaWindow::Hour => HOUR,
        QuotaWindow::Day => DAY,
        QuotaWindow::Month => 31 * DAY,
        QuotaWindow::Fixed => u64::MAX,
    }
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian, days since 1970-01-01).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_windows_contain_now() {
        let now = 1_764_222_187_123; // 2025-11-27T05:43:07.123Z
        assert_eq!(
            bounds(QuotaWindow::Second, now),
            (now - 123, now - 123 + 1_000)
        );
        let (s, e) = bounds(QuotaWindow::Minute, now);
        assert_eq!((s % MINUTE, e - s), (0, MINUTE));
        assert!(s <= now && now < e);
        let (s, e) = bounds(QuotaWindow::Day, now);
        assert_eq!((s % DAY, e - s), (0, DAY));
        assert_eq!(bounds(QuotaWindow::Fixed, now), (0, u64::MAX));
    }

    #[test]
    fn months_follow_the_calendar() {
        // 2025-11-27 → November 2025 (30 days).
        let (s, e) = bounds(QuotaWindow::Month, 1_764_222_187_123);
        assert_eq!(s, 1_761_955_200_000); // 2025-11-01T00:00:00Z
        assert_eq!(e, 1_764_547_200_000); // 2025-12-01T00:00:00Z
                                          // December rolls into the next year; February 2024 is a leap month.
        let (s, e) = bounds(QuotaWindow::Month, 1_766_000_000_000);
        assert_eq!((s, e), (1_764_547_200_000, 1_767_225_600_000));
        let (s, e) = bounds(QuotaWindow::Month, 1_708_000_000_000);
        assert_eq!((e - s) / DAY, 29);
        // The last millisecond of a month is still in it.
        assert_eq!(bounds(QuotaWindow::Month, e - 1), (s, e));
        assert_eq!(bounds(QuotaWindow::Month, e).0, e);
    }
}
