//! Durations as operators write them: `30d`, `12h`, `90s`, `15m`, `2w`, or combined (`1h30m`).
//!
//! Parsing is strict: no sign, no fraction, no unknown unit, no overflow, never zero.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A whole number of seconds, at least one, written and read in operators' notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(u64);

/// The longest duration accepted anywhere: 100 years, so sums and timestamps never overflow.
pub const MAX_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("empty duration; write it like 30d, 12h, 15m or 90s")]
    Empty,
    #[error("`{0}` is not a duration; write it like 30d, 12h, 15m or 90s")]
    Malformed(String),
    #[error("a duration must be at least 1s")]
    Zero,
    #[error("a duration may not exceed 100 years")]
    TooLong,
}

impl HumanDuration {
    pub fn from_secs(secs: u64) -> Result<Self, DurationError> {
        match secs {
            0 => Err(DurationError::Zero),
            s if s > MAX_SECONDS => Err(DurationError::TooLong),
            s => Ok(Self(s)),
        }
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// Seconds as a signed number, for arithmetic with timestamps (always fits: see
    /// [`MAX_SECONDS`]).
    pub fn as_secs_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        let malformed = || DurationError::Malformed(s.chars().take(40).collect());
        let mut total: u64 = 0;
        let mut number: Option<u64> = None;
        for c in s.chars() {
            if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
                let n = number.unwrap_or(0);
                number = Some(
                    n.checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or(DurationError::TooLong)?,
                );
            } else {
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3_600,
                    'd' => 86_400,
                    'w' => 604_800,
                    _ => return Err(malformed()),
                };
                let n = number.take().ok_or_else(malformed)?;
                total = n
                    .checked_mul(unit)
                    .and_then(|v| total.checked_add(v))
                    .ok_or(DurationError::TooLong)?;
            }
        }
        if number.is_some() {
            // A bare number has no unit: refuse rather than guess seconds.
            return Err(malformed());
        }
        Self::from_secs(total)
    }
}

/// Serialised as the operator notation (`"30d"`), the same form configuration takes.
impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from the operator notation, as configuration files write it.
impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that divides the duration exactly, so `30d` prints as `30d`; a day or
    /// two print in hours (`24h`), as people say them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let text = if s.is_multiple_of(86_400) && s >= 3 * 86_400 {
            format!("{}d", s / 86_400)
        } else if s.is_multiple_of(3_600) {
            format!("{}h", s / 3_600)
        } else if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_notation() {
        let p = |s: &str| s.parse::<HumanDuration>().map(HumanDuration::as_secs);
        assert_eq!(p("30d"), Ok(30 * 86_400));
        assert_eq!(p("12h"), Ok(43_200));
        assert_eq!(p("90s"), Ok(90));
        assert_eq!(p("1h30m"), Ok(5_400));
        assert_eq!(p("2w"), Ok(1_209_600));
        assert_eq!(p(" 1s "), Ok(1));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5h",
            "1y",
            "0s",
            "0d0h",
            "1 d",
            "١d",
            "99999999999999999999d",
            "300000000w",
        ] {
            assert!(
                bad.parse::<HumanDuration>().is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        for (secs, text) in [
            (2_592_000, "30d"),
            (604_800, "7d"),
            (86_400, "24h"),
            (172_800, "48h"),
            (28_800, "8h"),
            (90, "90s"),
            (120, "2m"),
        ] {
            assert_eq!(
                HumanDuration::from_secs(secs).map(|d| d.to_string()),
                Ok(text.to_owned())
            );
        }
    }
}
