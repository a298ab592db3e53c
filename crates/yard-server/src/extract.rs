//! Extractors that refuse bad input in the API's error shape, worded for
//! people: a JSON body (empty, an array, a field missing), a raw body, path
//! and query parameters.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use yard_api::ErrorCode;

use crate::error::AppError;

/// Largest request body the API reads; bigger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest hook event `/hook` reads: a tool call's input carries whole
/// files an agent writes, so it gets more room than the API.
pub const MAX_HOOK_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest delivery `/webhook/gitea` reads: a push of many commits is
/// bigger than an API request.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// Why a body could not be read: too large (413), or cut short (400).
fn unreadable_body(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the body is too large: the API reads at most {MAX_BODY_BYTES} bytes, hook events {MAX_HOOK_BODY_BYTES}, webhook deliveries {MAX_WEBHOOK_BODY_BYTES}"
            ),
        )
    } else {
        invalid(format!("cannot read the body: {rejection}"))
    }
}

/// A body as it came, for checking a signature over its exact bytes.
#[derive(Debug)]
pub(crate) struct RawBody(pub(crate) Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(unreadable_body)
    }
}

/// A JSON object body deserialised into `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

fn invalid(message: impl Into<String>) -> AppError {
    AppError::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, message)
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(AppError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with 'Content-Type: application/json'",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(unreadable_body)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid("the body is empty; send a JSON object"));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
        if !value.is_object() {
            let kind = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(invalid(format!(
                "the body must be a JSON object, not {kind}"
            )));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| invalid(format!("the body does not fit: {e}")))
    }
}

/// A path parameter; a malformed one is a 400 in our error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub(crate) struct PathArg<T>(pub(crate) T);

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            rejection.body_text(),
        )
    }
}

/// Query parameters; malformed ones are a 400 in our error shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub(crate) struct QueryArgs<T>(pub(crate) T);

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            rejection.body_text(),
        )
    }
}
