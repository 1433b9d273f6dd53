//! The console's HTML forms as they arrive: `application/x-www-form-urlencoded`, at most
//! 64 KiB.

use crate::problem::{Problem, ProblemCode as P};
use crate::request::ApiBody;
use http::Request;
use http_body_util::{BodyExt, Limited};

/// Largest accepted form.
const MAX_FORM: usize = 64 << 10;

/// A submitted form: its fields in order (a name may repeat).
#[derive(Debug, Default, Clone)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Reads the form body of `req` (`bad-request` when it is not a form or too large).
    pub async fn read(req: Request<ApiBody>) -> Result<Form, Problem> {
        let form_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(Problem::new(
                P::BadRequest,
                "console changes are HTML forms (application/x-www-form-urlencoded)",
            ));
        }
        let bytes = Limited::new(req.into_body(), MAX_FORM)
            .collect()
            .await
            .map_err(|e| Problem::new(P::BadRequest, format!("form: {e}")))?
            .to_bytes();
        Ok(Form::parse(&bytes))
    }

    /// The fields of a URL-encoded form or query string.
    pub fn parse(bytes: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The first value of `name`, trimmed, when present and not empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded_and_trimmed() {
        let f = Form::parse(b"reason=too+many%20requests&x=&reason=second&q=%E8%AE%B8%E5%8F%AF");
        assert_eq!(f.get("reason"), "too many requests");
        assert_eq!(f.opt("x"), None);
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.get("q"), "许可");
    }
}
