//! Extensions registered through the Extensions API (2020-01-01).
//!
//! The sandbox owns this registry under its lock: an invocation ends only when the runtime and
//! every extension subscribed to `INVOKE` have asked for their next event, as in Lambda.

use std::collections::VecDeque;

use serde::Serialize;
use tokio::sync::oneshot;

/// Lambda's limit of extensions per function.
pub const MAX_EXTENSIONS: usize = 10;

/// An event for an extension.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "eventType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExtensionEvent {
    /// An invocation started.
    Invoke {
        /// Deadline, epoch ms.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u128,
        /// Request id.
        #[serde(rename = "requestId")]
        request_id: String,
        /// ARN as invoked.
        #[serde(rename = "invokedFunctionArn")]
        invoked_function_arn: String,
        /// X-Ray tracing.
        tracing: Tracing,
    },
    /// The sandbox is going away.
    Shutdown {
        /// `spindown`, `timeout` or `failure`.
        #[serde(rename = "shutdownReason")]
        shutdown_reason: &'static str,
        /// Deadline, epoch ms.
        #[serde(rename = "deadlineMs")]
        deadline_ms: u128,
    },
}

/// The `tracing` object of an `INVOKE` event.
#[derive(Debug, Clone, Serialize)]
pub struct Tracing {
    /// Always `X-Amzn-Trace-Id`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The trace header.
    pub value: String,
}

/// One registered extension.
#[derive(Debug)]
pub struct Extension {
    /// `Lambda-Extension-Identifier`.
    pub id: String,
    /// `Lambda-Extension-Name`.
    pub name: String,
    /// Subscribed to `INVOKE`.
    pub invoke: bool,
    /// Subscribed to `SHUTDOWN`.
    pub shutdown: bool,
    /// Waiting in `event/next`.
    pub parked: Option<oneshot::Sender<ExtensionEvent>>,
    /// Events not yet taken.
    pub queued: VecDeque<ExtensionEvent>,
    /// Has called `event/next` at least once (init done for it).
    pub ready: bool,
    /// Got an `INVOKE` and has not asked for the next event yet.
    pub busy: bool,
}

/// All registered extensions of the current runtime generation.
#[derive(Debug, Default)]
pub struct Registry {
    /// Extensions by registration order.
    pub extensions: Vec<Extension>,
}

impl Registry {
    /// The extension with this identifier.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Extension> {
        self.extensions.iter_mut().find(|e| e.id == id)
    }

    /// True when every extension finished init.
    pub fn all_ready(&self) -> bool {
        self.extensions.iter().all(|e| e.ready)
    }

    /// True when no extension is still handling an `INVOKE`.
    pub fn all_idle(&self) -> bool {
        self.extensions.iter().all(|e| !e.busy)
    }

    /// Delivers `event` to every extension for which `wants` holds.
    pub fn broadcast(&mut self, event: &ExtensionEvent, wants: impl Fn(&Extension) -> bool) {
        for ext in self.extensions.iter_mut().filter(|e| wants(e)) {
            if matches!(event, ExtensionEvent::Invoke { .. }) {
                ext.busy = true;
            }
            let event = event.clone();
            match ext.parked.take() {
                Some(tx) => {
                    if let Err(event) = tx.send(event) {
                        ext.queued.push_back(event);
                    }
                }
                None => ext.queued.push_back(event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_lambda_sends_them() {
        let invoke = ExtensionEvent::Invoke {
            deadline_ms: 1,
            request_id: "r".into(),
            invoked_function_arn: "arn".into(),
            tracing: Tracing {
                kind: "X-Amzn-Trace-Id",
                value: "Root=1".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&invoke).unwrap(),
            r#"{"eventType":"INVOKE","deadlineMs":1,"requestId":"r","invokedFunctionArn":"arn","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1"}}"#
        );
        let shutdown = ExtensionEvent::Shutdown {
            shutdown_reason: "spindown",
            deadline_ms: 2,
        };
        assert_eq!(
            serde_json::to_string(&shutdown).unwrap(),
            r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":2}"#
        );
    }
}
