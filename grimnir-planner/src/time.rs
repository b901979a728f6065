//! Lengths of time, and the mapping of a station's local wall clock onto UTC.
//!
//! All planning arithmetic is done in whole milliseconds (`i64` since the Unix epoch for
//! instants, [`Millis`] for lengths): integer arithmetic is exact and identical on every machine,
//! which the byte-identical-timeline promise depends on.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A length of time in whole milliseconds, never negative.
///
/// In station and library files a length is written either as a number of seconds
/// (`215`, `215.5`) or as a string: `"3:35"`, `"1:02:03.5"`, `"90s"`, `"250ms"`, `"4m30s"`,
/// `"2h"`, `"30d"`. It is written back as a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(u64);

impl Millis {
    /// No time at all.
    pub const ZERO: Millis = Millis(0);

    /// A length of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Millis(ms)
    }

    /// A length of `s` whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Millis(s.saturating_mul(1000))
    }

    /// A length of `m` whole minutes.
    pub const fn from_minutes(m: u64) -> Self {
        Millis(m.saturating_mul(60_000))
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The length in milliseconds as a signed number, saturating (lengths past
    /// 292 million years are not meaningful here).
    pub(crate) fn signed(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// The length in seconds, for display.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self - other`, or zero when `other` is longer.
    pub const fn saturating_sub(self, other: Millis) -> Millis {
        Millis(self.0.saturating_sub(other.0))
    }

    /// `self + other`, saturating.
    pub const fn saturating_add(self, other: Millis) -> Millis {
        Millis(self.0.saturating_add(other.0))
    }

    /// Parses the string forms described on the type.
    pub fn parse(text: &str) -> Result<Millis, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty length".into());
        }
        if text.contains(':') {
            return parse_clock_form(text);
        }
        if let Ok(secs) = text.parse::<f64>() {
            return Millis::from_secs_f64(secs);
        }
        parse_unit_form(text)
    }

    /// A length of `secs` seconds, rounded to the millisecond.
    pub fn from_secs_f64(secs: f64) -> Result<Millis, String> {
        if !secs.is_finite() {
            return Err(format!("{secs} is not a finite number of seconds"));
        }
        if secs < 0.0 {
            return Err(format!("{secs} s is negative"));
        }
        let ms = (secs * 1000.0).round();
        // Ten thousand years is far beyond any schedule and keeps later `i64` sums exact.
        if ms > 3.2e14 {
            return Err(format!("{secs} s is too long"));
        }
        Ok(Millis(ms as u64))
    }
}

fn parse_clock_form(text: &str) -> Result<Millis, String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(format!(
            "`{text}` has too many `:` parts (use h:mm:ss or m:ss)"
        ));
    }
    let (last, whole) = parts
        .split_last()
        .ok_or_else(|| format!("`{text}` is empty"))?;
    let secs: f64 = last
        .parse()
        .map_err(|_| format!("`{last}` in `{text}` is not a number of seconds"))?;
    if !(0.0..60.0).contains(&secs) || whole.is_empty() {
        return Err(format!("seconds in `{text}` must be below 60"));
    }
    let mut total = 0u64;
    for (i, p) in whole.iter().enumerate() {
        let v: u64 = p
            .parse()
            .map_err(|_| format!("`{p}` in `{text}` is not a whole number"))?;
        if i > 0 && v >= 60 {
            return Err(format!("minutes in `{text}` must be below 60"));
        }
        total = total.saturating_mul(60).saturating_add(v);
    }
    Millis::from_secs_f64(total as f64 * 60.0 + secs)
}

fn parse_unit_form(text: &str) -> Result<Millis, String> {
    let mut total = 0.0f64;
    let mut rest = text;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("`{text}` needs a unit (d, h, m, s or ms) after its last number")
            })?;
        if num_end == 0 {
            return Err(format!(
                "`{text}` is not a length (try `3:35`, `215s` or `4m30s`)"
            ));
        }
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("`{}` in `{text}` is not a number", &rest[..num_end]))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match rest[..unit_end].trim() {
            "d" => 86_400.0,
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}` (use d, h, m, s or ms)"
                ));
            }
        };
        total += value * factor;
        rest = &rest[unit_end..];
        any = true;
    }
    if !any {
        return Err(format!("`{text}` is not a length"));
    }
    Millis::from_secs_f64(total)
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.0;
        let (h, m, s, ms) = (
            total / 3_600_000,
            total / 60_000 % 60,
            total / 1000 % 60,
            total % 1000,
        );
        if h > 0 {
            write!(f, "{h}:{m:02}:{s:02}")?;
        } else {
            write!(f, "{m}:{s:02}")?;
        }
        if ms > 0 {
            write!(f, ".{ms:03}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_u64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a length: seconds as a number, or a string like \"3:35\" or \"90s\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Millis, E> {
                Millis::from_secs_f64(v as f64).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Millis, E> {
                Millis::from_secs_f64(v as f64).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Millis, E> {
                Millis::from_secs_f64(v).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Millis, E> {
                Millis::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Milliseconds since the Unix epoch: the planner's internal instant.
pub(crate) type Instant = i64;

pub(crate) fn to_instant(t: DateTime<Utc>) -> Instant {
    t.timestamp_millis()
}

pub(crate) fn from_instant(ms: Instant) -> DateTime<Utc> {
    // Every instant the planner makes lies between validated window bounds.
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

const HOUR_MS: i64 = 3_600_000;

/// A stretch of real time during which one local clock hour is on the wall.
///
/// Usually a whole hour starting at `:00`. Around a DST change it can be shorter, or start part
/// way into the hour: on Lord Howe Island the spring change jumps from 02:00 to 02:30, so the
/// hour "02" there lasts 30 minutes and starts at wall offset 30:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WallHour {
    /// First instant of the stretch.
    pub start: Instant,
    /// First instant after it.
    pub end: Instant,
    /// Local date at `start`.
    pub date: NaiveDate,
    /// Local weekday index at `start`, Monday = 0.
    pub weekday: u32,
    /// Local hour at `start`.
    pub hour: u32,
    /// How far into the hour's template the wall clock is at `start`, in milliseconds.
    pub offset: i64,
}

/// Returns the wall hour containing instant `t` in zone `tz`.
pub(crate) fn wall_hour_at(tz: Tz, t: Instant) -> WallHour {
    let local = from_instant(t).with_timezone(&tz);
    let naive = local.naive_local();
    let offset = i64::from(naive.minute()) * 60_000
        + i64::from(naive.second()) * 1000
        + i64::from(naive.nanosecond() / 1_000_000);
    // Start: the later of (t - offset) and the most recent UTC-offset change.
    let mut start = t - offset;
    let here = local.offset().fix().local_minus_utc();
    if from_instant(start)
        .with_timezone(&tz)
        .offset()
        .fix()
        .local_minus_utc()
        != here
    {
        start = last_offset_change(tz, start, t);
    }
    // End: the next :00 instant or offset change, whichever is first.
    let mut end = t - offset + HOUR_MS;
    let end_local = from_instant(end).with_timezone(&tz);
    let end_offset = end_local.offset().fix().local_minus_utc();
    if end_offset != here || end_local.naive_local().minute() != 0 {
        end = last_offset_change(tz, t, end);
    }
    let start_local = from_instant(start).with_timezone(&tz).naive_local();
    let start_offset = i64::from(start_local.minute()) * 60_000
        + i64::from(start_local.second()) * 1000
        + i64::from(start_local.nanosecond() / 1_000_000);
    WallHour {
        start,
        end,
        date: start_local.date(),
        weekday: start_local.weekday().num_days_from_monday(),
        hour: start_local.hour(),
        offset: start_offset,
    }
}

/// The first instant in `(lo, hi]` whose UTC offset differs from the offset at `lo`, found by
/// bisection to the millisecond. Zones change offset at whole seconds, so this is exact.
fn last_offset_change(tz: Tz, lo: Instant, hi: Instant) -> Instant {
    let off = |t: Instant| {
        from_instant(t)
            .with_timezone(&tz)
            .offset()
            .fix()
            .local_minus_utc()
    };
    let base = off(lo);
    if off(hi) == base {
        return hi;
    }
    let (mut a, mut b) = (lo, hi);
    while b - a > 1 {
        let mid = a + (b - a) / 2;
        if off(mid) == base { a = mid } else { b = mid }
    }
    b
}

/// Resolves a local date and time to UTC the way a person would expect:
/// a time that occurs twice (autumn) means its first occurrence; a time skipped by a spring
/// change means the moment the clocks jump to. The second value says which case applied.
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> (Instant, LocalResolution) {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => {
            (to_instant(t.with_timezone(&Utc)), LocalResolution::Exact)
        }
        chrono::LocalResult::Ambiguous(first, _) => (
            to_instant(first.with_timezone(&Utc)),
            LocalResolution::FirstOfTwo,
        ),
        chrono::LocalResult::None => {
            // Interpret the wall time with the offset in force just before the gap; that instant
            // lies inside the skipped span, whose end is the next offset change.
            let before = tz.offset_from_utc_datetime(&(local - chrono::TimeDelta::hours(1)));
            let guess = to_instant(Utc.from_utc_datetime(&local))
                - i64::from(before.fix().local_minus_utc()) * 1000;
            let jump = last_offset_change(tz, guess - 4 * HOUR_MS, guess + 4 * HOUR_MS);
            (jump, LocalResolution::Skipped)
        }
    }
}

/// How [`resolve_local`] mapped a wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalResolution {
    Exact,
    FirstOfTwo,
    Skipped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(s: &str) -> Instant {
        to_instant(s.parse::<DateTime<Utc>>().unwrap())
    }

    #[test]
    fn parses_lengths() {
        assert_eq!(Millis::parse("3:35"), Ok(Millis::from_secs(215)));
        assert_eq!(
            Millis::parse("1:02:03.5"),
            Ok(Millis::from_millis(3_723_500))
        );
        assert_eq!(Millis::parse("90s"), Ok(Millis::from_secs(90)));
        assert_eq!(Millis::parse("4m30s"), Ok(Millis::from_secs(270)));
        assert_eq!(Millis::parse("250ms"), Ok(Millis::from_millis(250)));
        assert_eq!(Millis::parse("2h"), Ok(Millis::from_secs(7200)));
        assert_eq!(Millis::parse("30d"), Ok(Millis::from_secs(30 * 86_400)));
        assert_eq!(Millis::parse("12.25"), Ok(Millis::from_millis(12_250)));
        assert!(Millis::parse("-3").is_err());
        assert!(Millis::parse("3:75").is_err());
        assert!(Millis::parse("5 parsecs").is_err());
        assert!(Millis::parse("").is_err());
        assert!(Millis::parse("NaN").is_err());
    }

    #[test]
    fn displays_lengths() {
        assert_eq!(Millis::from_secs(215).to_string(), "3:35");
        assert_eq!(Millis::from_millis(3_723_500).to_string(), "1:02:03.500");
    }

    #[test]
    fn ordinary_hour() {
        let h = wall_hour_at(chrono_tz::Europe::London, utc("2026-07-01T10:15:00Z"));
        assert_eq!(h.start, utc("2026-07-01T10:00:00Z"));
        assert_eq!(h.end, utc("2026-07-01T11:00:00Z"));
        assert_eq!((h.hour, h.offset), (11, 0));
    }

    #[test]
    fn new_york_spring_forward_skips_two_oclock() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT at 07:00 UTC.
        let tz = chrono_tz::America::New_York;
        let h1 = wall_hour_at(tz, utc("2026-03-08T06:30:00Z"));
        assert_eq!(
            (h1.hour, h1.start, h1.end),
            (1, utc("2026-03-08T06:00:00Z"), utc("2026-03-08T07:00:00Z"))
        );
        let h3 = wall_hour_at(tz, h1.end);
        assert_eq!((h3.hour, h3.offset), (3, 0));
        assert_eq!(h3.end, utc("2026-03-08T08:00:00Z"));
    }

    #[test]
    fn new_york_fall_back_repeats_one_oclock() {
        // 2026-11-01 02:00 EDT becomes 01:00 EST at 06:00 UTC.
        let tz = chrono_tz::America::New_York;
        let first = wall_hour_at(tz, utc("2026-11-01T05:00:00Z"));
        let second = wall_hour_at(tz, first.end);
        assert_eq!((first.hour, second.hour), (1, 1));
        assert_eq!(first.end - first.start, HOUR_MS);
        assert_eq!(second.end - second.start, HOUR_MS);
        assert_eq!(wall_hour_at(tz, second.end).hour, 2);
    }

    #[test]
    fn lord_howe_half_hour_changes() {
        let tz = chrono_tz::Australia::Lord_Howe;
        // Spring: 2026-10-04 02:00 LHST (+10:30) jumps to 02:30 LHDT (+11:00) at 15:30 UTC.
        let h1 = wall_hour_at(tz, utc("2026-10-03T15:00:00Z"));
        assert_eq!((h1.hour, h1.end), (1, utc("2026-10-03T15:30:00Z")));
        let h2 = wall_hour_at(tz, h1.end);
        assert_eq!((h2.hour, h2.offset), (2, 30 * 60_000));
        assert_eq!(h2.end - h2.start, HOUR_MS / 2);
        // Autumn: 2026-04-05 02:00 LHDT (+11) falls back to 01:30 LHST (+10:30) at 15:00 UTC.
        let a = wall_hour_at(tz, utc("2026-04-04T14:10:00Z"));
        assert_eq!(
            (a.hour, a.start, a.end),
            (1, utc("2026-04-04T14:00:00Z"), utc("2026-04-04T15:00:00Z"))
        );
        let b = wall_hour_at(tz, a.end);
        assert_eq!((b.hour, b.offset), (1, 30 * 60_000));
        assert_eq!(b.end - b.start, HOUR_MS / 2);
        assert_eq!(wall_hour_at(tz, b.end).hour, 2);
    }

    #[test]
    fn resolves_skipped_and_repeated_local_times() {
        let ny = chrono_tz::America::New_York;
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let (t, how) = resolve_local(ny, d.and_hms_opt(2, 30, 0).unwrap());
        assert_eq!(
            (t, how),
            (utc("2026-03-08T07:00:00Z"), LocalResolution::Skipped)
        );
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let (t, how) = resolve_local(ny, d.and_hms_opt(1, 30, 0).unwrap());
        assert_eq!(
            (t, how),
            (utc("2026-11-01T05:30:00Z"), LocalResolution::FirstOfTwo)
        );
    }
}
