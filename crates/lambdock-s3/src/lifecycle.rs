//! Bucket lifecycle rules: validation on Put, and a background sweeper applying the
//! expiration actions (Expiration Days/Date, AbortIncompleteMultipartUpload).
//!
//! A "day" is configurable so tests can watch expiry happen; AWS also rounds expiry up to the
//! next midnight UTC, which only makes sense with real days, so it is not done here. Rules
//! filtering on tags never match (objects here carry no tags), so such a rule expires nothing
//! rather than too much.

use std::sync::Arc;
use std::time::Duration;

use s3s::dto::{ExpirationStatus, LifecycleRule};

use crate::error::StoreError;
use crate::object::ObjectMeta;
use crate::store::Store;

/// Checks a configuration as S3 does before storing it.
pub fn validate(rules: &[LifecycleRule]) -> Result<(), StoreError> {
    let invalid = |m: &str| Err(StoreError::InvalidArgument(m.to_string()));
    if rules.is_empty() || rules.len() > 1000 {
        return Err(StoreError::InvalidRequest(
            "The lifecycle configuration must have between 1 and 1000 rules".into(),
        ));
    }
    for rule in rules {
        if rule.expiration.is_none()
            && rule.abort_incomplete_multipart_upload.is_none()
            && rule.transitions.is_none()
            && rule.noncurrent_version_expiration.is_none()
            && rule.noncurrent_version_transitions.is_none()
        {
            return invalid("At least one action needs to be specified in a rule");
        }
        if let Some(days) = rule.expiration.as_ref().and_then(|e| e.days)
            && days <= 0
        {
            return invalid("'Days' for Expiration action must be a positive integer");
        }
        if let Some(days) = rule
            .abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation)
            && days <= 0
        {
            return invalid(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            );
        }
    }
    Ok(())
}

fn enabled(rule: &LifecycleRule) -> bool {
    rule.status.as_str() == ExpirationStatus::ENABLED
}

/// The key prefix a rule applies to, or `None` if it filters on tags (never matching here).
fn prefix(rule: &LifecycleRule) -> Option<&str> {
    match &rule.filter {
        Some(f) if f.tag.is_some() => None,
        Some(f) => match &f.and {
            Some(and) if and.tags.as_ref().is_some_and(|t| !t.is_empty()) => None,
            Some(and) => Some(and.prefix.as_deref().unwrap_or("")),
            None => Some(f.prefix.as_deref().or(rule.prefix.as_deref()).unwrap_or("")),
        },
        None => Some(rule.prefix.as_deref().unwrap_or("")),
    }
}

fn size_matches(rule: &LifecycleRule, size: u64) -> bool {
    let Some(f) = &rule.filter else { return true };
    let (gt, lt) = match &f.and {
        Some(and) => (and.object_size_greater_than, and.object_size_less_than),
        None => (f.object_size_greater_than, f.object_size_less_than),
    };
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    gt.is_none_or(|g| size > g) && lt.is_none_or(|l| size < l)
}

fn timestamp_ms(t: &s3s::dto::Timestamp) -> u64 {
    let t: time::OffsetDateTime = t.clone().into();
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Whether an object has expired under the rules at `now_ms`.
pub fn object_expired(
    rules: &[LifecycleRule],
    meta: &ObjectMeta,
    now_ms: u64,
    day: Duration,
) -> bool {
    rules.iter().filter(|r| enabled(r)).any(|rule| {
        let Some(exp) = &rule.expiration else {
            return false;
        };
        let Some(p) = prefix(rule) else { return false };
        if !meta.key.starts_with(p) || !size_matches(rule, meta.size) {
            return false;
        }
        let by_days = exp.days.is_some_and(|d| {
            let age = u64::try_from(d).unwrap_or(0) * day.as_millis() as u64;
            meta.last_modified_ms.saturating_add(age) <= now_ms
        });
        let by_date = exp.date.as_ref().is_some_and(|d| timestamp_ms(d) <= now_ms);
        by_days || by_date
    })
}

/// Whether a multipart upload of `key` initiated at `initiated_ms` is due to be aborted.
pub fn upload_expired(
    rules: &[LifecycleRule],
    key: &str,
    initiated_ms: u64,
    now_ms: u64,
    day: Duration,
) -> bool {
    rules.iter().filter(|r| enabled(r)).any(|rule| {
        let Some(days) = rule
            .abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation)
        else {
            return false;
        };
        let Some(p) = prefix(rule) else { return false };
        let age = u64::try_from(days).unwrap_or(0) * day.as_millis() as u64;
        key.starts_with(p) && initiated_ms.saturating_add(age) <= now_ms
    })
}

/// One pass over every bucket: deletes expired objects and aborts stale uploads.
pub fn sweep(store: &Store, day: Duration) -> Result<(), StoreError> {
    let now = crate::object::now_ms();
    for bucket in store.buckets()? {
        let Some(rules) = bucket.config()?.lifecycle else {
            continue;
        };
        let expired: Vec<String> = bucket.with_objects(|objects| {
            objects
                .values()
                .filter(|m| object_expired(&rules, m, now, day))
                .map(|m| m.key.clone())
                .collect()
        })?;
        for key in expired {
            tracing::info!(bucket = %bucket.name, %key, "lifecycle expiration");
            store.delete_object(&bucket, &key)?;
        }
        for upload in store.uploads(&bucket)? {
            if upload_expired(&rules, &upload.key, upload.initiated_ms, now, day) {
                tracing::info!(bucket = %bucket.name, key = %upload.key, "lifecycle aborts an incomplete multipart upload");
                store.abort_upload(&bucket, &upload.id)?;
            }
        }
    }
    Ok(())
}

/// Runs [`sweep`] every `interval` until the task is dropped.
pub async fn run(store: Arc<Store>, day: Duration, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || sweep(&s, day)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "lifecycle sweep failed"),
            Err(e) => tracing::warn!(error = %e, "lifecycle sweep panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::{AbortIncompleteMultipartUpload, LifecycleExpiration, LifecycleRuleFilter, Tag};

    const DAY: Duration = Duration::from_secs(10);

    fn empty_rule() -> LifecycleRule {
        LifecycleRule {
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            abort_incomplete_multipart_upload: None,
            expiration: None,
            filter: None,
            id: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    fn rule(prefix: &str, days: i32) -> LifecycleRule {
        LifecycleRule {
            filter: Some(LifecycleRuleFilter {
                prefix: Some(prefix.into()),
                ..Default::default()
            }),
            expiration: Some(LifecycleExpiration {
                days: Some(days),
                ..Default::default()
            }),
            ..empty_rule()
        }
    }

    fn meta(key: &str, at: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            last_modified_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn expiration_by_days_and_prefix() {
        let rules = [rule("logs/", 2)];
        assert!(!object_expired(&rules, &meta("logs/a", 0), 19_999, DAY));
        assert!(object_expired(&rules, &meta("logs/a", 0), 20_000, DAY));
        assert!(!object_expired(&rules, &meta("data/a", 0), 99_999, DAY));
    }

    #[test]
    fn disabled_and_tag_rules_expire_nothing() {
        let mut disabled = rule("", 1);
        disabled.status = ExpirationStatus::from_static(ExpirationStatus::DISABLED);
        let mut tagged = rule("", 1);
        tagged.filter = Some(LifecycleRuleFilter {
            tag: Some(Tag {
                key: Some("k".into()),
                value: Some("v".into()),
            }),
            ..Default::default()
        });
        assert!(!object_expired(
            &[disabled, tagged],
            &meta("x", 0),
            u64::MAX / 2,
            DAY
        ));
    }

    #[test]
    fn abort_incomplete_uploads() {
        let r = LifecycleRule {
            abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
                days_after_initiation: Some(1),
            }),
            prefix: Some("tmp/".into()),
            ..empty_rule()
        };
        let rules = [r];
        assert!(upload_expired(&rules, "tmp/x", 0, 10_000, DAY));
        assert!(!upload_expired(&rules, "tmp/x", 0, 9_999, DAY));
        assert!(!upload_expired(&rules, "keep/x", 0, 10_000, DAY));
        // An abort rule does not expire objects.
        assert!(!object_expired(&rules, &meta("tmp/x", 0), 10_000, DAY));
    }

    #[test]
    fn validation_refuses_non_positive_days_and_empty_rules() {
        assert!(validate(&[rule("", 0)]).is_err());
        assert!(validate(&[]).is_err());
        let mut no_action = rule("", 1);
        no_action.expiration = None;
        assert!(validate(&[no_action]).is_err());
        assert!(validate(&[rule("", 1)]).is_ok());
    }
}
