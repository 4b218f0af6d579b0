//! When a schedule fires next.
//!
//! Cron expressions are evaluated on the wall clock of their time zone (UTC for EventBridge
//! rules, `ScheduleExpressionTimezone` for EventBridge Scheduler), as EventBridge Scheduler
//! documents for daylight saving time: a time the clock skips in spring does not fire, a time
//! it repeats in autumn fires once. Rates count fixed durations from an anchor, the moment
//! the schedule was created (Lambdock: the moment it was first deployed in this process),
//! whatever the clock does.

use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::expression::Expression;

/// A time zone name that is not an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid ScheduleExpressionTimezone: {0}")]
pub struct InvalidTimezone(pub String);

/// How far ahead a cron search goes through wall-clock times that do not exist (a DST gap
/// holds at most a few of them) before it gives up.
const MAX_SKIPPED: usize = 10_000;

/// An expression with what it needs to produce fire times.
#[derive(Debug, Clone)]
pub struct Timing {
    expression: Expression,
    zone: Tz,
    anchor: DateTime<Utc>,
    rate_period_ms: Option<i64>,
    fire_at_anchor: bool,
}

impl Timing {
    /// The timing of `expression` evaluated in `timezone` (`None`: UTC). Rates start at
    /// `anchor` and count `minute` as their minute (60 s unless shortened for tests); with
    /// `fire_at_anchor` the first fire is the anchor itself (EventBridge Scheduler without a
    /// `StartDate` starts at once), otherwise one period after it (EventBridge rules).
    pub fn new(
        expression: Expression,
        timezone: Option<&str>,
        anchor: DateTime<Utc>,
        minute: Duration,
        fire_at_anchor: bool,
    ) -> Result<Timing, InvalidTimezone> {
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| InvalidTimezone(name.to_string()))?,
        };
        let rate_period_ms = match &expression {
            Expression::Rate { value, unit } => Some(
                i64::try_from(minute.as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1)
                    .saturating_mul(i64::try_from(*value * unit.minutes()).unwrap_or(i64::MAX)),
            ),
            Expression::Cron(_) => None,
        };
        Ok(Timing {
            expression,
            zone,
            anchor,
            rate_period_ms,
            fire_at_anchor,
        })
    }

    /// The first fire strictly after `after`, `None` when the schedule never fires again.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.rate_period_ms {
            Some(period) => self.next_rate(after, period),
            None => self.next_cron(after),
        }
    }

    fn next_rate(&self, after: DateTime<Utc>, period: i64) -> Option<DateTime<Utc>> {
        let first = i64::from(!self.fire_at_anchor);
        let elapsed = (after - self.anchor).num_milliseconds();
        let k = if elapsed < 0 {
            first
        } else {
            (elapsed / period + 1).max(first)
        };
        let offset = chrono::TimeDelta::try_milliseconds(k.checked_mul(period)?)?;
        self.anchor.checked_add_signed(offset)
    }

    fn next_cron(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor: NaiveDateTime = after.with_timezone(&self.zone).naive_local();
        for _ in 0..MAX_SKIPPED {
            let wall = self.expression.next_cron_match(cursor)?;
            let instant = match self.zone.from_local_datetime(&wall) {
                LocalResult::Single(t) => Some(t),
                // The repeated hour: the first pass fires; the second only when the first is
                // already behind us.
                LocalResult::Ambiguous(first, second) => {
                    [first, second].into_iter().find(|t| t.to_utc() > after)
                }
                LocalResult::None => None,
            };
            match instant.map(|t| t.to_utc()) {
                Some(t) if t > after => return Some(t),
                _ => cursor = wall,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A timing anchored at 2026-01-01T00:00:00Z.
    fn timing_with(expr: &str, tz: Option<&str>, minute_s: u64, fire_at_anchor: bool) -> Timing {
        Timing::new(
            Expression::parse(expr).unwrap(),
            tz,
            utc("2026-01-01T00:00:00Z"),
            Duration::from_secs(minute_s),
            fire_at_anchor,
        )
        .unwrap()
    }

    fn timing(expr: &str, tz: Option<&str>) -> Timing {
        timing_with(expr, tz, 60, false)
    }

    fn fires(expr: &str, tz: Option<&str>, after: &str, n: usize) -> Vec<String> {
        let t = timing(expr, tz);
        let mut at = utc(after);
        (0..n)
            .map(|_| {
                at = t.next_fire(at).unwrap();
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect()
    }

    /// AWS's example expressions (EventBridge user guide, "Schedule expressions") with their
    /// next fire times. 2026-12-03 is a Thursday.
    #[test]
    fn eventbridge_examples_fire_when_aws_says() {
        let table: &[(&str, &str, &[&str])] = &[
            // 10:00 AM UTC every day.
            (
                "cron(0 10 * * ? *)",
                "2026-12-03T10:00:00Z",
                &["2026-12-04T10:00:00Z", "2026-12-05T10:00:00Z"],
            ),
            // 12:15 PM UTC every day.
            (
                "cron(15 12 * * ? *)",
                "2026-12-03T11:00:00Z",
                &["2026-12-03T12:15:00Z", "2026-12-04T12:15:00Z"],
            ),
            // 6:00 PM Monday through Friday.
            (
                "cron(0 18 ? * MON-FRI *)",
                "2026-12-04T18:00:00Z",
                &["2026-12-07T18:00:00Z", "2026-12-08T18:00:00Z"],
            ),
            // 8:00 AM on the first day of the month.
            (
                "cron(0 8 1 * ? *)",
                "2026-12-03T00:00:00Z",
                &["2027-01-01T08:00:00Z", "2027-02-01T08:00:00Z"],
            ),
            // Every 15 minutes.
            (
                "cron(0/15 * * * ? *)",
                "2026-12-03T10:07:00Z",
                &[
                    "2026-12-03T10:15:00Z",
                    "2026-12-03T10:30:00Z",
                    "2026-12-03T10:45:00Z",
                    "2026-12-03T11:00:00Z",
                ],
            ),
            // Every 10 minutes Monday through Friday.
            (
                "cron(0/10 * ? * MON-FRI *)",
                "2026-12-04T23:55:00Z",
                &["2026-12-07T00:00:00Z", "2026-12-07T00:10:00Z"],
            ),
            // Every 5 minutes Monday through Friday between 8:00 AM and 5:55 PM.
            (
                "cron(0/5 8-17 ? * MON-FRI *)",
                "2026-12-03T17:52:00Z",
                &["2026-12-03T17:55:00Z", "2026-12-04T08:00:00Z"],
            ),
            // 9 AM on the first Monday of each month (December 2026 starts on a Tuesday).
            (
                "cron(0 9 ? * 2#1 *)",
                "2026-12-03T00:00:00Z",
                &["2026-12-07T09:00:00Z", "2027-01-04T09:00:00Z"],
            ),
            // 10:15 AM on the last Friday of every month from 2026 to 2030.
            (
                "cron(15 10 ? * 6L 2026-2030)",
                "2026-12-03T00:00:00Z",
                &["2026-12-25T10:15:00Z", "2027-01-29T10:15:00Z"],
            ),
            // 8 AM on the last weekday of the month.
            (
                "cron(0 8 LW * ? *)",
                "2026-12-03T00:00:00Z",
                &["2026-12-31T08:00:00Z", "2027-01-29T08:00:00Z"],
            ),
            // Noon on the weekday nearest the 15th (2027-05-15 is a Saturday: Friday the 14th).
            (
                "cron(0 12 15W * ? *)",
                "2027-04-16T00:00:00Z",
                &["2027-05-14T12:00:00Z", "2027-06-15T12:00:00Z"],
            ),
            // Noon on the last day of the month.
            (
                "cron(0 12 L * ? *)",
                "2027-02-01T00:00:00Z",
                &["2027-02-28T12:00:00Z", "2027-03-31T12:00:00Z"],
            ),
            // Day of week 1 is Sunday.
            (
                "cron(0 12 ? * 1 *)",
                "2026-12-03T00:00:00Z",
                &["2026-12-06T12:00:00Z", "2026-12-13T12:00:00Z"],
            ),
        ];
        for (expr, after, want) in table {
            assert_eq!(fires(expr, None, after, want.len()), *want, "{expr}");
        }
    }

    #[test]
    fn year_ranges_end() {
        let t = timing("cron(15 10 ? * 6L 2026-2027)", None);
        assert_eq!(
            t.next_fire(utc("2027-12-31T10:15:00Z"))
                .map(|t| t.to_rfc3339()),
            None
        );
    }

    #[test]
    fn time_zones_follow_the_wall_clock() {
        // 9:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer.
        assert_eq!(
            fires(
                "cron(0 9 * * ? *)",
                Some("America/New_York"),
                "2027-03-13T00:00:00Z",
                2
            ),
            ["2027-03-13T14:00:00Z", "2027-03-14T13:00:00Z"]
        );
        assert_eq!(
            fires(
                "cron(30 8 ? * MON *)",
                Some("Asia/Tokyo"),
                "2026-12-03T00:00:00Z",
                1
            ),
            ["2026-12-06T23:30:00Z"]
        );
    }

    #[test]
    fn spring_gap_is_skipped() {
        // 2027-03-14 02:30 does not exist in New York.
        assert_eq!(
            fires(
                "cron(30 2 * * ? *)",
                Some("America/New_York"),
                "2027-03-13T12:00:00Z",
                2
            ),
            ["2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z"]
        );
    }

    #[test]
    fn autumn_repeat_fires_once() {
        // 2027-11-07 01:30 happens twice in New York (05:30Z and 06:30Z).
        assert_eq!(
            fires(
                "cron(30 1 * * ? *)",
                Some("America/New_York"),
                "2027-11-06T12:00:00Z",
                2
            ),
            ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"]
        );
        // Every 30 minutes: the repeated hour's wall times fire in the first pass only.
        assert_eq!(
            fires(
                "cron(0/30 * * * ? *)",
                Some("America/New_York"),
                "2027-11-07T05:10:00Z",
                3
            ),
            [
                "2027-11-07T05:30:00Z",
                "2027-11-07T07:00:00Z",
                "2027-11-07T07:30:00Z"
            ]
        );
    }

    #[test]
    fn unknown_time_zone_is_refused() {
        let e = Timing::new(
            Expression::parse("cron(0 9 * * ? *)").unwrap(),
            Some("Mars/Olympus"),
            Utc::now(),
            Duration::from_secs(60),
            false,
        )
        .unwrap_err();
        assert_eq!(e, InvalidTimezone("Mars/Olympus".into()));
    }

    #[test]
    fn rates_count_from_their_anchor() {
        assert_eq!(
            fires("rate(5 minutes)", None, "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]
        );
        assert_eq!(
            fires("rate(1 day)", None, "2026-01-01T00:07:00Z", 1),
            ["2026-01-02T00:00:00Z"]
        );
        // A day is 24 hours even across a DST change.
        assert_eq!(
            fires(
                "rate(1 day)",
                Some("America/New_York"),
                "2026-03-08T00:00:00Z",
                1
            ),
            ["2026-03-09T00:00:00Z"]
        );
        let scheduler = timing_with("rate(2 hours)", None, 60, true);
        assert_eq!(
            scheduler.next_fire(utc("2025-12-31T23:59:59Z")),
            Some(utc("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn a_shortened_minute_scales_rates() {
        let t = timing_with("rate(1 minute)", None, 2, false);
        assert_eq!(
            t.next_fire(utc("2026-01-01T00:00:03Z")),
            Some(utc("2026-01-01T00:00:04Z"))
        );
    }
}
