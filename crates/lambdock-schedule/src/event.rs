//! What a fire delivers to the function.
//!
//! A schedule sends its `Input` when it has one. Otherwise an EventBridge rule sends the scheduled
//! event (lambda-protocols.md A4.4), and EventBridge Scheduler its "default notification": the
//! same shape with `source` `aws.scheduler`, the schedule's ARN, and `detail` as the *string*
//! `"{}"` (as delivered to Lambda; see the sample event in Powertools for AWS Lambda's tests,
//! `tests/events/eventBridgeSchedulerEvent.json`, and the parsers it broke).

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use lambdock_template::manifest::Schedule;
use serde::Serialize;

/// A schedule's `Input` that is not JSON (EventBridge requires a valid JSON text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Input of schedule {schedule} is not valid JSON: {reason}")]
pub struct InvalidInput {
    /// The schedule.
    pub schedule: String,
    /// The JSON parser's complaint.
    pub reason: String,
}

/// EventBridge's scheduled event, fields in EventBridge's order.
#[derive(Serialize)]
struct ScheduledEvent<'a> {
    version: &'a str,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    source: &'a str,
    account: &'a str,
    time: String,
    region: &'a str,
    resources: [String; 1],
    detail: serde_json::Value,
}

/// The ARN of a schedule: the rule of a `Schedule` event, the schedule (in its group) of a
/// `ScheduleV2` one.
pub fn arn(name: &str, schedule: &Schedule, region: &str, account: &str) -> String {
    if schedule.scheduler {
        let group = schedule.group.as_deref().unwrap_or("default");
        format!("arn:aws:scheduler:{region}:{account}:schedule/{group}/{name}")
    } else {
        format!("arn:aws:events:{region}:{account}:rule/{name}")
    }
}

/// The payload of the fire of schedule `name` at `time`.
pub fn payload(
    name: &str,
    schedule: &Schedule,
    region: &str,
    account: &str,
    time: DateTime<Utc>,
) -> Result<Bytes, InvalidInput> {
    if let Some(input) = &schedule.input {
        serde_json::from_str::<serde::de::IgnoredAny>(input).map_err(|e| InvalidInput {
            schedule: name.to_string(),
            reason: e.to_string(),
        })?;
        return Ok(Bytes::from(input.clone()));
    }
    let (source, detail) = if schedule.scheduler {
        ("aws.scheduler", serde_json::Value::String("{}".into()))
    } else {
        (
            "aws.events",
            serde_json::Value::Object(serde_json::Map::new()),
        )
    };
    let event = ScheduledEvent {
        version: "0",
        id: uuid::Uuid::new_v4().to_string(),
        detail_type: "Scheduled Event",
        source,
        account,
        time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
        region,
        resources: [arn(name, schedule, region, account)],
        detail,
    };
    let text = serde_json::to_vec(&event).map_err(|e| InvalidInput {
        schedule: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(input: Option<&str>, scheduler: bool) -> Schedule {
        Schedule {
            function: "f".into(),
            qualifier: None,
            expression: "rate(1 minute)".into(),
            timezone: None,
            input: input.map(str::to_string),
            enabled: true,
            scheduler,
            group: None,
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2019-03-01T01:23:45.678Z")
            .unwrap()
            .to_utc()
    }

    /// The event a fire without input sends, as text, and its id.
    fn event_text(name: &str, scheduler: bool, region: &str, account: &str) -> (String, String) {
        let body = payload(name, &schedule(None, scheduler), region, account, at()).unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        (text, id)
    }

    #[test]
    fn scheduled_event_has_eventbridge_shape() {
        let (text, id) = event_text("my-schedule", false, "us-east-2", "123456789012");
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        assert_eq!(
            text,
            format!(
                r#"{{"version":"0","id":"{id}","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2019-03-01T01:23:45Z","region":"us-east-2","resources":["arn:aws:events:us-east-2:123456789012:rule/my-schedule"],"detail":{{}}}}"#
            )
        );
        let (_, again) = event_text("s", false, "r", "1");
        assert_ne!(again, id, "each event has its own id");
    }

    #[test]
    fn input_replaces_the_event() {
        let body = payload(
            "s",
            &schedule(Some(r#"{"job": "nightly", "n": 3}"#), false),
            "r",
            "1",
            at(),
        )
        .unwrap();
        assert_eq!(&body[..], br#"{"job": "nightly", "n": 3}"#);
        let e = payload("s", &schedule(Some("{nope"), false), "r", "1", at()).unwrap_err();
        assert_eq!(e.schedule, "s");
    }

    #[test]
    fn scheduler_without_input_sends_its_default_notification() {
        let (text, id) = event_text("nightly", true, "eu-west-1", "111122223333");
        assert_eq!(
            text,
            format!(
                r#"{{"version":"0","id":"{id}","detail-type":"Scheduled Event","source":"aws.scheduler","account":"111122223333","time":"2019-03-01T01:23:45Z","region":"eu-west-1","resources":["arn:aws:scheduler:eu-west-1:111122223333:schedule/default/nightly"],"detail":"{{}}"}}"#
            )
        );
        let grouped = Schedule {
            group: Some("reports".into()),
            ..schedule(None, true)
        };
        assert_eq!(
            arn("nightly", &grouped, "eu-west-1", "111122223333"),
            "arn:aws:scheduler:eu-west-1:111122223333:schedule/reports/nightly"
        );
    }
}
