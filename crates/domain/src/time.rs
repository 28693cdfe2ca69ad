//! Calendar arithmetic on milliseconds since the epoch: the limits count days and years in
//! China Standard Time (UTC+8, no daylight saving), and the API shows UTC.

const DAY_MS: i64 = 86_400_000;
/// China Standard Time is UTC+8 all year.
const SHANGHAI_OFFSET_MS: i64 = 8 * 3_600_000;

/// The first millisecond of the Shanghai calendar day that contains `ms`.
pub fn shanghai_day_start_ms(ms: i64) -> i64 {
    (ms + SHANGHAI_OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - SHANGHAI_OFFSET_MS
}

/// The first millisecond of the Shanghai calendar year that contains `ms`.
pub fn shanghai_year_start_ms(ms: i64) -> i64 {
    let (year, _, _) = civil_from_days((ms + SHANGHAI_OFFSET_MS).div_euclid(DAY_MS));
    days_from_civil(year, 1, 1) * DAY_MS - SHANGHAI_OFFSET_MS
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count since
/// 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_days_and_years() {
        // 2026-11-11T00:00+08:00 is 2026-11-10T16:00Z.
        let singles_day = days_from_civil(2026, 11, 10) * DAY_MS + 16 * 3_600_000;
        assert_eq!(shanghai_day_start_ms(singles_day), singles_day);
        assert_eq!(shanghai_day_start_ms(singles_day - 1), singles_day - DAY_MS);
        assert_eq!(shanghai_day_start_ms(singles_day + DAY_MS - 1), singles_day);
        // 2027-01-01T00:00+08:00 is 2026-12-31T16:00Z: that moment is in 2027 there.
        let new_year = days_from_civil(2026, 12, 31) * DAY_MS + 16 * 3_600_000;
        assert_eq!(shanghai_year_start_ms(new_year), new_year);
        assert_eq!(
            shanghai_year_start_ms(new_year - 1),
            days_from_civil(2025, 12, 31) * DAY_MS + 16 * 3_600_000
        );
        for days in [-800_000, -1, 0, 59, 10_957, 20_780, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
