//! Schedules: SAM `Schedule` (EventBridge rule) and `ScheduleV2` (EventBridge Scheduler)
//! events, fired as asynchronous invocations through the gateway's queue.
//!
//! - [`expression`]: `rate(...)` and `cron(...)` parsed and validated as EventBridge does.
//! - [`timing`]: next fire times, in a time zone.
//! - [`event`]: what a fire delivers (the scheduled event or the schedule's `Input`).
//! - [`scheduler`]: the task that follows the deployment and fires.

pub mod event;
pub mod expression;
pub mod scheduler;
pub mod timing;

pub use scheduler::{ScheduleArgs, ScheduleConfig, run};

/// Checks a schedule as EventBridge does when it is created (expression, time zone, input),
/// so a deploy refuses what would never fire.
pub fn check(schedule: &lambdock_template::manifest::Schedule) -> Result<(), String> {
    let expression = expression::Expression::parse(&schedule.expression)
        .map_err(|e| format!("{}: {e} ({})", schedule.expression, e.reason))?;
    timing::Timing::new(
        expression,
        schedule.timezone.as_deref(),
        chrono::Utc::now(),
        std::time::Duration::from_secs(60),
        schedule.scheduler,
    )
    .map_err(|e| e.to_string())?;
    if let Some(input) = &schedule.input {
        serde_json::from_str::<serde_json::Value>(input)
            .map_err(|e| format!("Input is not valid JSON: {e}"))?;
    }
    Ok(())
}
