//! Asynchronous (`Event`) invocations: accepted into the durable [`Queue`] (202 only once the
//! event is on disk), delivered by a dispatcher that respects each function's concurrency, with
//! Lambda's retry rules: a function error is retried twice, after 1 and 2 minutes (configurable);
//! a throttle or a platform error is retried with backoff, not counting as an attempt; an event
//! older than the maximum event age (6 hours) is dropped with a log line. After a crash the
//! queue replays, so every accepted event is delivered at least once.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;

use crate::errors::LambdaError;
use crate::gateway::Gateway;
use crate::now_ms;
use crate::queue::{Event, Queue};

/// Retry rules.
#[derive(Debug, Clone)]
pub struct AsyncConfig {
    /// Delay before each retry after a function error (Lambda: 60 s, then 120 s); its length is
    /// the number of retries.
    pub retry_delays: Vec<Duration>,
    /// Events older than this are dropped.
    pub max_event_age: Duration,
    /// Deliveries in flight at most (each function's own cap applies too).
    pub max_in_flight: usize,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            max_event_age: Duration::from_secs(6 * 3600),
            max_in_flight: 256,
        }
    }
}

/// Delivers queued events until the task is dropped.
pub async fn dispatch(gateway: Arc<Gateway>, queue: Arc<Queue>, cfg: AsyncConfig) {
    let notify = queue.notifier();
    let slots = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    loop {
        let free = slots.available_permits();
        let due = if free == 0 {
            Vec::new()
        } else {
            queue.take_due(now_ms(), free, None)
        };
        if due.is_empty() {
            let wait = queue
                .next_due_ms()
                .map_or(1000, |t| (t - now_ms()).clamp(1, 1000)) as u64;
            tokio::select! {
                _ = notify.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {},
            }
            continue;
        }
        for event in due {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (gateway, queue, cfg) = (gateway.clone(), queue.clone(), cfg.clone());
            tokio::spawn(async move {
                deliver(&gateway, &queue, event, &cfg).await;
                drop(permit);
            });
        }
    }
}

/// Records a delivery's outcome. The queue fsyncs, so this runs off the reactor.
async fn record(
    queue: &Arc<Queue>,
    op: impl FnOnce(&Queue) -> Result<(), crate::queue::QueueError> + Send + 'static,
) {
    let queue = queue.clone();
    let result = match tokio::task::spawn_blocking(move || op(&queue)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "the async queue could not record a delivery; the event may be delivered again");
    }
}

async fn deliver(gateway: &Gateway, queue: &Arc<Queue>, event: Event, cfg: &AsyncConfig) {
    let id = event.id.clone();
    let age = Duration::from_millis((now_ms() - event.enqueued_at_ms).max(0) as u64);
    if age > cfg.max_event_age {
        tracing::warn!(request_id = %id, function = %event.function, ?age, "dropping an event older than the maximum event age");
        {
            let id = id.clone();
            record(queue, move |q| q.done(&id)).await;
        }
        return;
    }
    let resolved = match gateway
        .registry()
        .resolve(&event.function, event.qualifier.as_deref())
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request_id = %id, function = %event.function, error = %e, "dropping an event whose function is gone");
            {
                let id = id.clone();
                record(queue, move |q| q.done(&id)).await;
            }
            return;
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &event.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    let trace = event
        .headers
        .get("x-amzn-trace-id")
        .cloned()
        .unwrap_or_default();
    let payload = bytes::Bytes::from(event.payload.clone());
    match gateway
        .execute(&headers, &resolved, payload, &id, &trace)
        .await
    {
        Ok(outcome) if outcome.error_type.is_none() => {
            let id = id.clone();
            record(queue, move |q| q.done(&id)).await;
        }
        Ok(outcome) => {
            let attempt = event.attempt as usize;
            match cfg.retry_delays.get(attempt) {
                Some(delay) => {
                    tracing::info!(request_id = %id, function = %event.function, attempt = attempt + 1, error = ?outcome.error_type, ?delay, "function error; retrying");
                    let (id, attempt, at) = (
                        id.clone(),
                        event.attempt + 1,
                        now_ms() + delay.as_millis() as i64,
                    );
                    record(queue, move |q| q.retry(&id, attempt, at)).await;
                }
                None => {
                    tracing::warn!(request_id = %id, function = %event.function, attempts = attempt + 1, error = ?outcome.error_type, "discarding an event after its last retry");
                    {
                        let id = id.clone();
                        record(queue, move |q| q.done(&id)).await;
                    }
                }
            }
        }
        Err(e) => {
            // Throttles and platform errors are retried without counting as an attempt.
            let backoff = if matches!(e, LambdaError::TooManyRequests { .. }) {
                200
            } else {
                1000
            };
            tracing::debug!(request_id = %id, error = %e, "delivery deferred");
            let (id, attempt, at) = (id.clone(), event.attempt, now_ms() + backoff);
            record(queue, move |q| q.retry(&id, attempt, at)).await;
        }
    }
}
