//! Conditional GET/HEAD (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) as RFC 9110 orders them: an ETag condition, when present, decides
//! alone over its date counterpart.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode};

use crate::object::ObjectMeta;

/// The conditions of a request.
#[derive(Debug, Default)]
pub struct Conditions {
    /// If-Match.
    pub if_match: Option<ETagCondition>,
    /// If-None-Match.
    pub if_none_match: Option<ETagCondition>,
    /// If-Modified-Since.
    pub if_modified_since: Option<Timestamp>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<Timestamp>,
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions {
    /// `Ok` to serve the object, or 412 PreconditionFailed / 304 NotModified.
    pub fn check(&self, meta: &ObjectMeta) -> Result<(), S3Error> {
        // Last-Modified is served in whole seconds, so compare in those.
        let modified = i64::try_from(meta.last_modified_ms / 1000).unwrap_or(i64::MAX);
        let failed = match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) => !matches(c, &meta.etag),
            (None, Some(t)) => modified > seconds(t),
            (None, None) => false,
        };
        if failed {
            return Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
        let not_modified = match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) => matches(c, &meta.etag),
            (None, Some(t)) => modified <= seconds(t),
            (None, None) => false,
        };
        if not_modified {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use std::time::{Duration, UNIX_EPOCH};

    fn meta() -> ObjectMeta {
        ObjectMeta {
            etag: "abc".into(),
            last_modified_ms: 100_500,
            ..Default::default()
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn code(c: &Conditions) -> Option<String> {
        c.check(&meta())
            .err()
            .map(|e| e.code().as_str().to_string())
    }

    #[test]
    fn etag_conditions_decide_over_dates() {
        let tag = |v: &str| Some(ETagCondition::ETag(ETag::Strong(v.into())));
        let c = Conditions {
            if_match: tag("abc"),
            if_unmodified_since: Some(at(1)),
            ..Default::default()
        };
        assert_eq!(code(&c), None);
        let c = Conditions {
            if_match: tag("other"),
            ..Default::default()
        };
        assert_eq!(code(&c).as_deref(), Some("PreconditionFailed"));
        let c = Conditions {
            if_none_match: tag("abc"),
            ..Default::default()
        };
        assert_eq!(code(&c).as_deref(), Some("NotModified"));
        let c = Conditions {
            if_none_match: tag("other"),
            if_modified_since: Some(at(200)),
            ..Default::default()
        };
        assert_eq!(code(&c), None);
    }

    #[test]
    fn date_conditions_compare_whole_seconds() {
        let c = Conditions {
            if_modified_since: Some(at(100)),
            ..Default::default()
        };
        assert_eq!(code(&c).as_deref(), Some("NotModified"));
        let c = Conditions {
            if_modified_since: Some(at(99)),
            ..Default::default()
        };
        assert_eq!(code(&c), None);
        let c = Conditions {
            if_unmodified_since: Some(at(99)),
            ..Default::default()
        };
        assert_eq!(code(&c).as_deref(), Some("PreconditionFailed"));
    }
}
