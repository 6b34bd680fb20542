//! Calendar dates of Unix times, in UTC: what `status` shows of `[health]`'s state file and
//! the date xtask writes into the man pages. No time zone data is read.

/// `YYYY-MM-DD` of a Unix time (seconds), in UTC.
pub fn date(unix: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `2026-12-07 14:20:05 UTC` of a Unix time (seconds; fractions are dropped).
pub fn date_time(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let rest = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        date(secs),
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_read_as_utc() {
        assert_eq!(date_time(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date_time(1_700_000_000.4), "2023-11-14 22:13:20 UTC");
        assert_eq!(date_time(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(-86_400), "1969-12-31");
    }
}
