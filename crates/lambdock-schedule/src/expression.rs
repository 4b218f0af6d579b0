//! EventBridge schedule expressions: `rate(value unit)` and six-field `cron(...)`.
//!
//! croner evaluates cron patterns (Quartz-style `L`, `W`, `#`, weekdays 1=SUN..7=SAT), but it
//! accepts more than EventBridge does (seconds, `/` in day-of-week, both day fields set, any
//! year), so every field is checked against EventBridge's own rules first and anything else
//! is refused with AWS's one message for a bad expression.

use chrono::NaiveDateTime;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A schedule expression EventBridge would refuse. It displays as AWS's message; the reason
/// is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Parameter ScheduleExpression is not valid.")]
pub struct InvalidExpression {
    /// Why, in Lambdock's words (AWS gives none).
    pub reason: String,
}

fn invalid(reason: impl Into<String>) -> InvalidExpression {
    InvalidExpression {
        reason: reason.into(),
    }
}

/// The unit of a `rate(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minute,
    /// `hour` / `hours`.
    Hour,
    /// `day` / `days` (24 hours, whatever the time zone's clock does).
    Day,
}

impl RateUnit {
    /// The unit in minutes.
    pub fn minutes(self) -> u64 {
        match self {
            RateUnit::Minute => 1,
            RateUnit::Hour => 60,
            RateUnit::Day => 24 * 60,
        }
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub enum Expression {
    /// `rate(value unit)`.
    Rate {
        /// How many units between fires (≥ 1).
        value: u64,
        /// The unit.
        unit: RateUnit,
    },
    /// `cron(minutes hours day-of-month month day-of-week year)`.
    Cron(Box<Cron>),
}

impl Expression {
    /// Parses an expression as EventBridge does (`PutRule`, `CreateSchedule`).
    pub fn parse(text: &str) -> Result<Expression, InvalidExpression> {
        if let Some(inner) = text.strip_prefix("rate(").and_then(|t| t.strip_suffix(')')) {
            parse_rate(inner)
        } else if let Some(inner) = text.strip_prefix("cron(").and_then(|t| t.strip_suffix(')')) {
            parse_cron(inner)
        } else {
            Err(invalid(format!(
                "{text:?} is neither rate(...) nor cron(...)"
            )))
        }
    }

    /// The first wall-clock time strictly after `after` that a cron expression matches, in the
    /// same (naive, local) clock; `None` for rates or when no time matches any more (a past
    /// year range).
    pub fn next_cron_match(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Expression::Cron(cron) => cron.find_next_occurrence(&after, false).ok(),
            Expression::Rate { .. } => None,
        }
    }
}

fn parse_rate(inner: &str) -> Result<Expression, InvalidExpression> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(invalid("a rate is rate(value unit)"));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "rate value {value:?} is not a positive integer"
        )));
    }
    let value: u64 = value
        .parse()
        .map_err(|_| invalid(format!("rate value {value} is too large")))?;
    if value == 0 {
        return Err(invalid("rate value must be at least 1"));
    }
    let (unit, plural) = match *unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        other => return Err(invalid(format!("unknown rate unit {other:?}"))),
    };
    // EventBridge: singular exactly when the value is 1 (`rate(1 hours)`, `rate(5 hour)` fail).
    if plural == (value == 1) {
        return Err(invalid(format!(
            "rate({value} {unit:?}) uses the wrong number: singular only with 1"
        )));
    }
    value
        .checked_mul(unit.minutes() * 60)
        .ok_or_else(|| invalid("rate too large"))?;
    Ok(Expression::Rate { value, unit })
}

/// What one field of an EventBridge cron may hold.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    step: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
    step: true,
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
    step: true,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    step: true,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
    step: true,
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: WEEKDAYS,
    step: false,
};
const YEAR: Field = Field {
    name: "year",
    min: 1970,
    max: 2199,
    names: &[],
    step: true,
};

impl Field {
    fn value(&self, token: &str) -> Result<u32, InvalidExpression> {
        let upper = token.to_ascii_uppercase();
        let v = if let Some(i) = self.names.iter().position(|n| *n == upper) {
            self.min + i as u32
        } else if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token
                .parse()
                .map_err(|_| invalid(format!("{} value {token} is out of range", self.name)))?
        } else {
            return Err(invalid(format!("{} value {token:?} is invalid", self.name)));
        };
        if !(self.min..=self.max).contains(&v) {
            return Err(invalid(format!(
                "{} value {v} is outside {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    /// One item of a list: `*`, `v`, `a-b`, with `/n` where the field allows steps.
    fn item(&self, item: &str) -> Result<(), InvalidExpression> {
        let (range, step) = match item.split_once('/') {
            Some(_) if !self.step => {
                return Err(invalid(format!("{} does not take /", self.name)));
            }
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let ok = !step.is_empty()
                && step.bytes().all(|b| b.is_ascii_digit())
                && step.parse::<u32>().is_ok_and(|s| s >= 1);
            if !ok {
                return Err(invalid(format!("{} step {step:?} is invalid", self.name)));
            }
        }
        if range == "*" {
            return Ok(());
        }
        match range.split_once('-') {
            Some((a, b)) => {
                self.value(a)?;
                self.value(b)?;
            }
            None => {
                self.value(range)?;
            }
        }
        Ok(())
    }

    fn check(&self, field: &str) -> Result<(), InvalidExpression> {
        field.split(',').try_for_each(|item| self.item(item))
    }
}

fn check_day_of_month(field: &str) -> Result<(), InvalidExpression> {
    if field == "L" || field == "LW" {
        return Ok(());
    }
    if let Some(day) = field.strip_suffix('W') {
        return DAY_OF_MONTH.value(day).map(drop);
    }
    DAY_OF_MONTH.check(field)
}

fn check_day_of_week(field: &str) -> Result<(), InvalidExpression> {
    if field == "L" {
        return Ok(());
    }
    if let Some(day) = field.strip_suffix('L') {
        return DAY_OF_WEEK.value(day).map(drop);
    }
    if let Some((day, nth)) = field.split_once('#') {
        DAY_OF_WEEK.value(day)?;
        return match nth.parse::<u32>() {
            Ok(1..=5) if nth.len() == 1 => Ok(()),
            _ => Err(invalid(format!("day-of-week #{nth} is not 1-5"))),
        };
    }
    DAY_OF_WEEK.check(field)
}

fn parse_cron(inner: &str) -> Result<Expression, InvalidExpression> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields.as_slice() else {
        return Err(invalid(format!(
            "a cron has 6 fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        )));
    };
    MINUTES.check(minutes)?;
    HOURS.check(hours)?;
    MONTH.check(month)?;
    YEAR.check(year)?;
    match (*dom == "?", *dow == "?") {
        (true, true) => return Err(invalid("day-of-month and day-of-week are both ?")),
        (false, false) => {
            return Err(invalid(
                "one of day-of-month and day-of-week must be ? (they cannot both be set)",
            ));
        }
        (true, false) => check_day_of_week(dow)?,
        (false, true) => check_day_of_month(dom)?,
    }
    let pattern = format!("0 {}", fields.join(" "));
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
        .parse(&pattern)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Expression::Cron(Box::new(cron)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_eventbridge() {
        for (text, value, unit) in [
            ("rate(1 minute)", 1, RateUnit::Minute),
            ("rate(5 minutes)", 5, RateUnit::Minute),
            ("rate(1 hour)", 1, RateUnit::Hour),
            ("rate(12 hours)", 12, RateUnit::Hour),
            ("rate(1 day)", 1, RateUnit::Day),
            ("rate(7 days)", 7, RateUnit::Day),
        ] {
            match Expression::parse(text) {
                Ok(Expression::Rate { value: v, unit: u }) => {
                    assert_eq!((v, u), (value, unit), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_expressions_get_aws_message() {
        for text in [
            "rate(0 minutes)",
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(1 hours)",
            "rate(-1 minutes)",
            "rate(1.5 minutes)",
            "rate(5 seconds)",
            "rate(5 weeks)",
            "rate(5)",
            "rate 5 minutes",
            "cron(0 10 * * ?)",
            "cron(0 0 10 * * ? *)",
            "cron(0 10 * * * *)",
            "cron(0 10 ? * ? *)",
            "cron(0 10 1 * MON *)",
            "cron(60 10 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 10 32 * ? *)",
            "cron(0 10 0 * ? *)",
            "cron(0 10 * 13 ? *)",
            "cron(0 10 ? * 0 *)",
            "cron(0 10 ? * 8 *)",
            "cron(0 10 ? * MON/2 *)",
            "cron(0 10 ? * 2#6 *)",
            "cron(0 10 * * ? 1969)",
            "cron(0 10 * * ? 2200)",
            "cron(0/0 * * * ? *)",
            "cron(0 10 * * ? * extra)",
            "cron(0 10 * FOO ? *)",
            "every 5 minutes",
            "",
        ] {
            let e = Expression::parse(text).expect_err(text);
            assert_eq!(e.to_string(), "Parameter ScheduleExpression is not valid.");
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn valid_crons_parse() {
        for text in [
            "cron(0 10 * * ? *)",
            "cron(15 12 * * ? *)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(*/15 * * * ? *)",
            "cron(0/10 * ? * MON-FRI *)",
            "cron(0/5 8-17 ? * MON-FRI *)",
            "cron(0 9 ? * 2#1 *)",
            "cron(15 10 ? * 6L 2026-2030)",
            "cron(0 8 LW * ? *)",
            "cron(0 12 15W * ? *)",
            "cron(0 12 L * ? *)",
            "cron(0 12 ? * L *)",
            "cron(0 0,12 1,15 JAN-MAR,DEC ? *)",
            "cron(0 12 ? * sun *)",
        ] {
            assert!(
                matches!(Expression::parse(text), Ok(Expression::Cron(_))),
                "{text}: {:?}",
                Expression::parse(text)
            );
        }
    }
}
