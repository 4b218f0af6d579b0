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
