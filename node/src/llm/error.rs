//! LLM API errors in the shape each client SDK expects: OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` or Anthropic's
//! `{"type": "error", "error": {"type", "message"}}`. The SDKs pick their exception class
//! from the status, so the status is what matters most.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;

use super::translate::anthropic::error_to_anthropic;
use super::translate::TranslateError;
use crate::proxy::ProxyBody;

/// Which API the client called, hence which error shape it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone)]
pub struct LlmError {
    pub status: StatusCode,
    /// OpenAI `code` (also logged): `invalid_api_key`, `model_not_found`, ...
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Extra headers: `Retry-After`, `RateLimit-*` (boxed: errors travel in `Result`s).
    pub headers: Box<HeaderMap>,
    /// The attempts made before failing, for the access log.
    pub trace: Option<Box<super::LlmTrace>>,
}

impl LlmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> LlmError {
        LlmError {
            status,
            code,
            message: message.into(),
            param: None,
            headers: Box::default(),
            trace: None,
        }
    }

    pub fn traced(mut self, trace: super::LlmTrace) -> LlmError {
        self.trace = Some(Box::new(trace));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> LlmError {
        LlmError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> LlmError {
        self.param = Some(param.into());
        self
    }

    /// OpenAI's error `type` for this status.
    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "invalid_request_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    pub fn into_response(self, flavor: Flavor) -> Response<ProxyBody> {
        let body = match flavor {
            Flavor::OpenAi => json!({"error": {
                "message": self.message,
                "type": self.openai_type(),
                "param": self.param,
                "code": self.code,
            }}),
            Flavor::Anthropic => error_to_anthropic(self.status.as_u16(), self.code, &self.message),
        };
        let mut r = Response::new(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        *r.status_mut() = self.status;
        r.headers_mut().extend(*self.headers);
        if let Some(t) = self.trace {
            r.extensions_mut().insert(*t);
        }
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl From<TranslateError> for LlmError {
    fn from(e: TranslateError) -> LlmError {
        let param = match &e {
            TranslateError::Unsupported { param, .. } => Some(param.clone()),
            TranslateError::Invalid(_) => None,
        };
        let code = match &e {
            TranslateError::Unsupported { .. } => "unsupported_parameter",
            TranslateError::Invalid(_) => "invalid_request",
        };
        LlmError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: e.to_string(),
            param,
            headers: Box::default(),
            trace: None,
        }
    }
}
