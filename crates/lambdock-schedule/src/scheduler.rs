//! The scheduler task: follows the deployment's schedules and fires them.
//!
//! EventBridge invokes scheduled functions asynchronously, so a fire is an `Event` invocation
//! put on the gateway's durable queue: retries, the event age limit and concurrency throttling
//! apply as to any `Event` invoke, and a fire that overlaps a still-queued or running one waits
//! its turn (and is logged) rather than being skipped. As EventBridge, nothing is backfilled:
//! fires missed while Lambdock was down, or while this task was late, are skipped.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lambdock_gateway::gateway::{Gateway, new_trace_id};
use lambdock_gateway::registry::Registry;
use lambdock_template::manifest::Schedule;
use serde_json::json;

use crate::event;
use crate::expression::Expression;
use crate::timing::Timing;

/// How often the task looks for a new deployment when no fire is due sooner.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Scheduler options of `lambdock up` / `lambdock gateway`.
#[derive(clap::Args, Debug, Clone)]
pub struct ScheduleArgs {
    /// Seconds that one minute of a rate(...) schedule lasts. A test knob to watch rate
    /// schedules fire quickly (hours and days scale with it); cron schedules keep the real
    /// clock. Leave at 60 outside tests.
    #[arg(long, env = "LAMBDOCK_SCHEDULE_MINUTE_SECONDS", default_value_t = 60.0)]
    pub schedule_minute_seconds: f64,
}

impl ScheduleArgs {
    /// The configuration these options describe.
    pub fn config(&self) -> ScheduleConfig {
        let seconds = if self.schedule_minute_seconds.is_finite() {
            self.schedule_minute_seconds.max(0.001)
        } else {
            60.0
        };
        ScheduleConfig {
            minute: Duration::from_secs_f64(seconds),
        }
    }
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// How long a minute of a rate expression lasts (60 s but in tests).
    pub minute: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            minute: Duration::from_secs(60),
        }
    }
}

/// One schedule of the deployment and what happened to it.
struct Entry {
    spec: Schedule,
    timing: Result<Timing, String>,
    next: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    last_result: Option<String>,
    fires: u64,
}

impl Entry {
    fn new(name: &str, spec: &Schedule, cfg: &ScheduleConfig, now: DateTime<Utc>) -> Entry {
        let timing = Expression::parse(&spec.expression)
            .map_err(|e| {
                tracing::error!(
                    schedule = name,
                    expression = spec.expression,
                    reason = e.reason,
                    "{e}"
                );
                e.to_string()
            })
            .and_then(|expression| {
                Timing::new(
                    expression,
                    spec.timezone.as_deref(),
                    now,
                    cfg.minute,
                    spec.scheduler,
                )
                .map_err(|e| {
                    tracing::error!(schedule = name, "{e}");
                    e.to_string()
                })
            });
        let next = match &timing {
            // Scheduler rates fire at their creation; `next_fire` is strictly after.
            Ok(t) if spec.enabled => t.next_fire(now - chrono::TimeDelta::milliseconds(1)),
            _ => None,
        };
        Entry {
            spec: spec.clone(),
            timing,
            next,
            last_run: None,
            last_result: None,
            fires: 0,
        }
    }

    fn status(&self, name: &str) -> serde_json::Value {
        let time =
            |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        json!({
            "Name": name,
            "Function": self.spec.function,
            "Qualifier": self.spec.qualifier,
            "Expression": self.spec.expression,
            "Timezone": self.spec.timezone.as_deref().unwrap_or("UTC"),
            "Kind": if self.spec.scheduler { "ScheduleV2" } else { "Schedule" },
            "Enabled": self.spec.enabled,
            "NextRun": time(&self.next),
            "LastRun": time(&self.last_run),
            "LastResult": self.last_result,
            "Fires": self.fires,
            "Error": self.timing.as_ref().err(),
        })
    }
}

/// The schedules being followed, by name.
struct Schedules {
    entries: BTreeMap<String, Entry>,
    cfg: ScheduleConfig,
}

impl Schedules {
    /// Follows a new deployment: unchanged schedules keep their next fire (and a rate its
    /// phase), changed or new ones start now (a changed one keeps its history), removed ones go.
    fn sync(&mut self, registry: &Registry, now: DateTime<Utc>) {
        let mut old = std::mem::take(&mut self.entries);
        for (name, spec) in &registry.manifest.schedules {
            let entry = match old.remove(name) {
                Some(e) if e.spec == *spec => e,
                Some(e) => Entry {
                    last_run: e.last_run,
                    last_result: e.last_result,
                    fires: e.fires,
                    ..Entry::new(name, spec, &self.cfg, now)
                },
                None => Entry::new(name, spec, &self.cfg, now),
            };
            self.entries.insert(name.clone(), entry);
        }
    }

    fn publish(&self, gateway: &Gateway) {
        gateway.publish_schedules(serde_json::Value::Array(
            self.entries.iter().map(|(n, e)| e.status(n)).collect(),
        ));
    }

    fn earliest(&self) -> Option<DateTime<Utc>> {
        self.entries.values().filter_map(|e| e.next).min()
    }
}

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(gateway: Arc<Gateway>, cfg: ScheduleConfig, shutdown: impl Future<Output = ()>) {
    let mut schedules = Schedules {
        entries: BTreeMap::new(),
        cfg,
    };
    let mut seen: Option<Arc<Registry>> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let registry = gateway.registry();
        let mut changed = false;
        if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &registry)) {
            schedules.sync(&registry, Utc::now());
            seen = Some(registry.clone());
            changed = true;
        }
        let now = Utc::now();
        let due: Vec<String> = schedules
            .entries
            .iter()
            .filter(|(_, e)| e.next.is_some_and(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if let Some(entry) = schedules.entries.get_mut(&name) {
                fire(&gateway, &registry, &name, entry).await;
                changed = true;
            }
        }
        if changed {
            schedules.publish(&gateway);
        }
        let wait = schedules
            .earliest()
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .map_or(RELOAD_POLL, |d| d.min(RELOAD_POLL));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Fires a due schedule once and moves it to its next fire after now (skipping any missed).
async fn fire(gateway: &Gateway, registry: &Registry, name: &str, entry: &mut Entry) {
    let Some(at) = entry.next else { return };
    let now = Utc::now();
    entry.next = entry.timing.as_ref().ok().and_then(|t| t.next_fire(now));
    entry.last_run = Some(at);
    entry.fires += 1;
    gateway.metrics.schedule_fire(name);
    let spec = &entry.spec;
    let result = async {
        let body = event::payload(name, spec, &registry.region, &registry.account_id, at)
            .map_err(|e| e.to_string())?;
        let resolved = registry
            .resolve(&spec.function, spec.qualifier.as_deref())
            .map_err(|e| e.to_string())?;
        let waiting = gateway
            .queue()
            .map(|q| q.pending_by_function())
            .and_then(|p| p.get(&resolved.function.name).copied())
            .unwrap_or(0);
        if waiting > 0 {
            tracing::warn!(
                schedule = name,
                function = resolved.function.name,
                waiting,
                "schedule fired while earlier invocations are still queued or running; this one waits its turn"
            );
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let headers = BTreeMap::from([("x-amzn-trace-id".to_string(), new_trace_id())]);
        gateway
            .enqueue(&resolved, body, headers, &request_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(request_id)
    }
    .await;
    let fired_at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    entry.last_result = Some(match result {
        Ok(request_id) => {
            tracing::info!(
                schedule = name,
                function = spec.function,
                time = fired_at,
                request_id,
                "schedule fired"
            );
            format!("queued {request_id}")
        }
        Err(e) => {
            tracing::error!(
                schedule = name,
                function = spec.function,
                time = fired_at,
                error = e,
                "schedule fire failed"
            );
            format!("failed: {e}")
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn spec(expression: &str, enabled: bool) -> Schedule {
        Schedule {
            function: "f".into(),
            qualifier: None,
            expression: expression.into(),
            timezone: None,
            input: None,
            enabled,
            scheduler: false,
            group: None,
        }
    }

    fn registry(schedules: &[(&str, Schedule)]) -> Registry {
        let manifest: lambdock_template::manifest::Manifest = serde_json::from_value(json!({
            "schema_version": 1,
            "functions": {"f": {"runtime": "python3.12", "handler": "app.h", "code": {"dir": "/nonexistent"}}},
            "schedules": schedules.iter().cloned().collect::<HashMap<_, _>>(),
        }))
        .unwrap();
        Registry::new(&manifest, "us-east-1", "123456789012")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn reload_keeps_unchanged_schedules() {
        let mut s = Schedules {
            entries: BTreeMap::new(),
            cfg: ScheduleConfig::default(),
        };
        let t0 = utc("2026-12-03T10:00:30Z");
        s.sync(
            &registry(&[
                ("keep", spec("rate(5 minutes)", true)),
                ("change", spec("rate(5 minutes)", true)),
                ("drop", spec("cron(0 10 * * ? *)", true)),
            ]),
            t0,
        );
        assert_eq!(s.entries["keep"].next, Some(utc("2026-12-03T10:05:30Z")));
        s.entries.get_mut("change").unwrap().fires = 4;
        let t1 = utc("2026-12-03T10:02:00Z");
        s.sync(
            &registry(&[
                ("keep", spec("rate(5 minutes)", true)),
                ("change", spec("rate(10 minutes)", true)),
                ("off", spec("rate(1 minute)", false)),
                ("bad", spec("rate(1 minutes)", true)),
            ]),
            t1,
        );
        assert_eq!(s.entries["keep"].next, Some(utc("2026-12-03T10:05:30Z")));
        assert_eq!(s.entries["change"].next, Some(utc("2026-12-03T10:12:00Z")));
        assert_eq!(
            s.entries["change"].fires, 4,
            "a changed schedule keeps its history"
        );
        assert_eq!(s.entries["off"].next, None);
        assert_eq!(s.entries["bad"].next, None);
        assert!(!s.entries.contains_key("drop"));
        let bad = s.entries["bad"].status("bad");
        assert_eq!(bad["Error"], "Parameter ScheduleExpression is not valid.");
        let off = s.entries["off"].status("off");
        assert_eq!(
            (off["Enabled"].clone(), off["NextRun"].clone()),
            (json!(false), json!(null))
        );
        assert_eq!(s.earliest(), Some(utc("2026-12-03T10:05:30Z")));
    }

    #[test]
    fn minute_knob_scales() {
        let cfg = ScheduleArgs {
            schedule_minute_seconds: 2.0,
        }
        .config();
        assert_eq!(cfg.minute, Duration::from_secs(2));
    }
}
