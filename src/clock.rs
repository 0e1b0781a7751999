//! The business clock. Business dates are Asia/Shanghai dates; for demos, training and tests
//! the date can be fixed (`HONGXIN_TODAY` / `--today`) or driven by hand. Stores never let an
//! entry's date run backwards against the journal, whatever this clock says.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// China Standard Time has been UTC+8 with no daylight saving since 1991, so a fixed offset is
/// exact for every date this ledger can hold, without a time-zone database.
const SHANGHAI_OFFSET_SECS: i32 = 8 * 3600;

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// Today in Asia/Shanghai.
    #[default]
    System,
    /// A fixed business date.
    Fixed(NaiveDate),
    /// A date moved by hand, e.g. by the demo generator walking through past weeks.
    Manual(Arc<Mutex<NaiveDate>>),
}

impl Clock {
    pub fn manual(start: NaiveDate) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    /// Moves a manual clock; other clocks ignore it.
    pub fn set(&self, date: NaiveDate) {
        if let Clock::Manual(d) = self {
            *d.lock().unwrap_or_else(|p| p.into_inner()) = date;
        }
    }

    pub fn today(&self) -> NaiveDate {
        match self {
            Clock::System => shanghai_today(Utc::now()),
            Clock::Fixed(d) => *d,
            Clock::Manual(d) => *d.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Wall-clock time, recorded on entries as when they were posted.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub fn shanghai_today(now: DateTime<Utc>) -> NaiveDate {
    let offset = FixedOffset::east_opt(SHANGHAI_OFFSET_SECS)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    now.with_timezone(&offset).date_naive()
}

/// Parses `YYYY-MM-DD` for `HONGXIN_TODAY` and `--today`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date YYYY-MM-DD: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_date_turns_at_16_utc() {
        let before = DateTime::parse_from_rfc3339("2026-11-26T15:59:59Z")
            .unwrap()
            .to_utc();
        let after = DateTime::parse_from_rfc3339("2026-11-26T16:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            shanghai_today(before),
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        assert_eq!(
            shanghai_today(after),
            NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
        );
    }

    #[test]
    fn manual_clock_moves() {
        let c = Clock::manual(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        c.set(NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        assert!(parse_date("2026-13-01").is_err());
    }
}
