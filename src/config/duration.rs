//! Durations in the config are strings as operators write them: `"90s"`,
//! `"3m"`, `"1h30m"`, `"250ms"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn secs(s: u64) -> Self {
        ConfigDuration(Duration::from_secs(s))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parse `"1h30m"`, `"90s"`, `"250ms"`. Units: ms, s, m, h, d. A bare number
/// is refused: "5" could mean seconds or minutes and a guess is a surprise.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"90s\", \"3m\" or \"1h30m\"".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration \"{text}\" is not allowed"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{text}\"; write e.g. \"90s\", \"3m\" or \"1h30m\""
            ));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in duration \"{text}\""))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "duration \"{text}\" needs a unit (ms, s, m, h, d), e.g. \"{number}s\""
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in duration \"{text}\" (use ms, s, m, h or d)"
                ));
            }
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|v| v.checked_add(total_ms))
            .ok_or_else(|| format!("duration \"{text}\" is too large"))?;
        rest = &rest[unit_len..];
    }
    let ms = u64::try_from(total_ms).map_err(|_| format!("duration \"{text}\" is too large"))?;
    Ok(Duration::from_millis(ms))
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"90s\", \"3m\" or \"1h30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(ConfigDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::ports::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_operator_forms() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_ambiguous_or_negative() {
        for bad in [
            "",
            "5",
            "-5s",
            "3x",
            "m",
            "1.5m",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
