//! A server's check with its own timing: `server N check KIND ... [interval MS] [timeout MS]
//! [rise N] [fall N]`. Each word given overrides the global setting (`check_interval`,
//! `check_timeout`, `check_rise`, `check_fall`) for this server only; the others follow the
//! global ones, also when those change later.

use std::fmt;

use super::{
    parse_spec, CheckSettings, CheckSpec, CheckSpecError, CHECK_COUNT_MAX, CHECK_MS_MAX,
    CHECK_MS_MIN,
};

/// The timing one server's check overrides (`None`: the global setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CheckTiming {
    /// `interval MS`: milliseconds between two checks ([`CHECK_MS_MIN`]..=[`CHECK_MS_MAX`]).
    pub interval_ms: Option<u64>,
    /// `timeout MS`: milliseconds one check may take (same bounds).
    pub timeout_ms: Option<u64>,
    /// `rise N`: successes in a row that make a down server up (1..=[`CHECK_COUNT_MAX`]).
    pub rise: Option<u32>,
    /// `fall N`: failures in a row that make an up server down (same bounds).
    pub fall: Option<u32>,
}

impl CheckTiming {
    /// The timing this server's check runs with, `global` being the global settings.
    pub fn apply(&self, global: &CheckSettings) -> CheckSettings {
        CheckSettings {
            interval_ms: self.interval_ms.unwrap_or(global.interval_ms),
            timeout_ms: self.timeout_ms.unwrap_or(global.timeout_ms),
            rise: self.rise.unwrap_or(global.rise),
            fall: self.fall.unwrap_or(global.fall),
        }
    }
}

/// ` interval MS timeout MS rise N fall N`, each only when set (empty when none is).
impl fmt::Display for CheckTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.interval_ms {
            write!(f, " interval {v}")?;
        }
        if let Some(v) = self.timeout_ms {
            write!(f, " timeout {v}")?;
        }
        if let Some(v) = self.rise {
            write!(f, " rise {v}")?;
        }
        if let Some(v) = self.fall {
            write!(f, " fall {v}")?;
        }
        Ok(())
    }
}

/// One server's check: what it does and its own timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerCheck {
    /// What the check does.
    pub spec: CheckSpec,
    /// The timing it overrides.
    pub timing: CheckTiming,
}

impl From<CheckSpec> for ServerCheck {
    fn from(spec: CheckSpec) -> Self {
        ServerCheck {
            spec,
            timing: CheckTiming::default(),
        }
    }
}

/// `KIND ...` then the timing words that are set.
impl fmt::Display for ServerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.spec, self.timing)
    }
}

/// A number word within `lo..=hi` (digits only).
fn bounded(word: &str, lo: u64, hi: u64, expected: &'static str) -> Result<u64, CheckSpecError> {
    word.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| word.parse::<u64>().ok())
        .flatten()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| CheckSpecError::Unexpected {
            token: word.to_string(),
            expected,
        })
}

/// The milliseconds' error text.
const EXPECTED_MS: &str = "a number of milliseconds from 10 to 3600000";
/// The count's error text.
const EXPECTED_COUNT: &str = "a number of checks from 1 to 1000";

/// Parses `KIND ... [interval MS] [timeout MS] [rise N] [fall N]` (the timing words in any
/// order, each at most once), taking only the words it needs from `words`.
///
/// # Errors
/// [`CheckSpecError`] naming the word and what was expected: a bad specification, a number
/// out of its bounds, or a timing word given twice.
pub fn parse_server_check<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Result<ServerCheck, CheckSpecError> {
    let spec = parse_spec(words)?;
    let mut t = CheckTiming::default();
    while let Some(&key) = words.peek() {
        let (ms, count) = match key {
            "interval" if t.interval_ms.is_none() => (Some(&mut t.interval_ms), None),
            "timeout" if t.timeout_ms.is_none() => (Some(&mut t.timeout_ms), None),
            "rise" if t.rise.is_none() => (None, Some(&mut t.rise)),
            "fall" if t.fall.is_none() => (None, Some(&mut t.fall)),
            "interval" | "timeout" | "rise" | "fall" => {
                return Err(CheckSpecError::Unexpected {
                    token: key.to_string(),
                    expected: "each of interval, timeout, rise, fall at most once",
                })
            }
            _ => break,
        };
        words.next();
        let v = words
            .next()
            .ok_or(CheckSpecError::Missing(if ms.is_some() {
                EXPECTED_MS
            } else {
                EXPECTED_COUNT
            }))?;
        if let Some(slot) = ms {
            *slot = Some(bounded(v, CHECK_MS_MIN, CHECK_MS_MAX, EXPECTED_MS)?);
        }
        if let Some(slot) = count {
            let n = bounded(v, 1, u64::from(CHECK_COUNT_MAX), EXPECTED_COUNT)?;
            *slot = Some(u32::try_from(n).unwrap_or(CHECK_COUNT_MAX));
        }
    }
    Ok(ServerCheck { spec, timing: t })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerCheck, CheckSpecError> {
        let mut w = text.split_ascii_whitespace().peekable();
        let c = parse_server_check(&mut w)?;
        assert_eq!(w.next(), None, "{text}: words left");
        Ok(c)
    }

    #[test]
    fn timing_words_override_the_global_settings_and_display_back() {
        let c = parse("http /health 200 fall 5 interval 500").unwrap();
        assert_eq!(
            c.timing,
            CheckTiming {
                interval_ms: Some(500),
                fall: Some(5),
                ..CheckTiming::default()
            }
        );
        assert_eq!(c.to_string(), "http /health 200 interval 500 fall 5");
        assert_eq!(parse(&c.to_string()), Ok(c.clone()));
        let global = CheckSettings::default();
        let s = c.timing.apply(&global);
        assert_eq!(
            (s.interval_ms, s.timeout_ms, s.rise, s.fall),
            (500, 1000, 2, 5)
        );
        // Without timing words: the spec alone, displayed as before.
        let plain = parse("connect").unwrap();
        assert_eq!(plain, ServerCheck::from(CheckSpec::Connect));
        assert_eq!(plain.to_string(), "connect");
        // A send TEXT may be the word `interval`: it is the text.
        let odd = parse("send interval rise 3").unwrap();
        assert_eq!(odd.timing.rise, Some(3));
        assert_eq!(parse(&odd.to_string()), Ok(odd));
    }

    #[test]
    fn timing_out_of_bounds_or_repeated_is_refused_naming_the_word() {
        for (text, token) in [
            ("connect interval 9", "9"),
            ("connect interval 3600001", "3600001"),
            ("connect timeout -5", "-5"),
            ("connect rise 0", "0"),
            ("connect fall 1001", "1001"),
            (
                "connect fall 99999999999999999999999",
                "99999999999999999999999",
            ),
            ("connect rise 2 rise 3", "rise"),
        ] {
            match parse(text) {
                Err(CheckSpecError::Unexpected { token: t, .. }) => assert_eq!(t, token, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("connect interval"),
            Err(CheckSpecError::Missing(_))
        ));
    }
}
