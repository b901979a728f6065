//! Saturating time arithmetic, so that no input instant or length can make the executor panic.

use chrono::{DateTime, TimeDelta, Utc};
use grimnir_planner::Millis;

fn delta(d: Millis) -> TimeDelta {
    TimeDelta::try_milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(TimeDelta::MAX)
}

/// `t + d`, saturating at the latest representable instant.
pub(crate) fn plus(t: DateTime<Utc>, d: Millis) -> DateTime<Utc> {
    t.checked_add_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the earliest representable instant.
pub(crate) fn minus(t: DateTime<Utc>, d: Millis) -> DateTime<Utc> {
    t.checked_sub_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `b - a`, or zero when `b` is not after `a`.
pub(crate) fn span(a: DateTime<Utc>, b: DateTime<Utc>) -> Millis {
    Millis::from_millis(u64::try_from((b - a).num_milliseconds()).unwrap_or(0))
}

/// The open end of a cue that lasts until something else happens.
pub(crate) const OPEN: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;
