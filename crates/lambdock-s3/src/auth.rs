//! Authentication as S3 answers it: the platform's one key pair, `InvalidAccessKeyId` for an
//! unknown key (s3s' `SimpleAuth` says `NotSignedUp`), and AWS's messages on the errors s3s
//! leaves without one, so clients print what they would print against AWS.

use bytes::Bytes;
use s3s::auth::{S3Auth, SecretKey, SimpleAuth};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The platform's credentials.
#[derive(Debug)]
pub struct PlatformAuth(SimpleAuth);

impl PlatformAuth {
    /// Accepts requests signed with `access_key` / `secret_key` only.
    pub fn new(access_key: String, secret_key: String) -> Self {
        Self(SimpleAuth::from_single(access_key, secret_key))
    }
}

#[async_trait::async_trait]
impl S3Auth for PlatformAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0.lookup(access_key).cloned().ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        })
    }
}

/// AWS's message for an error code s3s answers without one.
fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "AccessDenied" => "Access Denied",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "InvalidRange" => "The requested range is not satisfiable",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema"
        }
        _ => return None,
    })
}

/// Adds the message to an S3 error body that has a code but no message.
pub fn with_default_message(body: &Bytes) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<Message>") {
        return None;
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    let message = default_message(&text[start..end])?;
    let at = end + "</Code>".len();
    Some(Bytes::from(format!(
        "{}<Message>{message}</Message>{}",
        &text[..at],
        &text[at..]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_message_is_added_and_a_present_one_kept() {
        let body = Bytes::from_static(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code></Error>",
        );
        let fixed = with_default_message(&body).unwrap();
        assert!(std::str::from_utf8(&fixed).unwrap().ends_with(
            "<Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message></Error>"
        ));
        let has = Bytes::from_static(b"<Error><Code>NoSuchKey</Code><Message>m</Message></Error>");
        assert!(with_default_message(&has).is_none());
        let unknown = Bytes::from_static(b"<Error><Code>Whatever</Code></Error>");
        assert!(with_default_message(&unknown).is_none());
    }
}
