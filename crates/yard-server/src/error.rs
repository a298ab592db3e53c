//! One error type for every handler, answering `{"error": ..., "code": ...}`.
//!
//! Client errors say exactly what was wrong. Server errors are logged with
//! their details and answered with a generic message: a store or engine
//! failure can carry paths, addresses or internals that are not the
//! caller's business.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use yard_api::{ApiError, ErrorCode};
use yard_git::GitError;
use yard_services::EngineError;
use yard_services::auth::TokenError;
use yard_services::repo_roots::RepoPathError;
use yard_services::{DeployError, OrchestratorError, QuestionsError, SettingsError, WebhookError};

/// An error answer.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// What the log gets for server errors; never sent.
    detail: Option<String>,
}

impl AppError {
    /// A 4xx answer with a message for the caller.
    pub fn client(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// A 5xx answer; `detail` goes to the log only.
    pub fn server(
        status: StatusCode,
        code: ErrorCode,
        message: &str,
        detail: impl ToString,
    ) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            detail: Some(detail.to_string()),
        }
    }

    pub fn internal(detail: impl ToString) -> Self {
        Self::server(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the daemon's log has the details",
            detail,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn unauthorized() -> Self {
        Self::client(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or invalid token: send 'Authorization: Bearer <token>' (the admin token is in the data directory's admin-token file)",
        )
    }
}

impl From<DeployError> for AppError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::InvalidName(e) => Self::client(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidName,
                e.to_string(),
            ),
            DeployError::NameTaken(_) => {
                Self::client(StatusCode::CONFLICT, ErrorCode::NameTaken, e.to_string())
            }
            DeployError::NoSuchStack(_) => Self::not_found(e.to_string()),
            DeployError::InProgress(_) => Self::client(
                StatusCode::CONFLICT,
                ErrorCode::DeploymentInProgress,
                e.to_string(),
            ),
            DeployError::NotOwner { .. } => {
                Self::client(StatusCode::FORBIDDEN, ErrorCode::Forbidden, e.to_string())
            }
            DeployError::InvalidImage(_) => Self::client(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                e.to_string(),
            ),
            DeployError::RolledBack { .. } => {
                Self::client(StatusCode::CONFLICT, ErrorCode::RolledBack, e.to_string())
            }
            DeployError::Engine(e) => e.into(),
            DeployError::Store(_) | DeployError::Transition(_) => Self::internal(e),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(_) => Self::server(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the container engine is not reachable; the daemon's log has the details",
                e,
            ),
            EngineError::ImageNotFound { .. } | EngineError::UnknownImageUser { .. } => {
                Self::client(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequest,
                    e.to_string(),
                )
            }
            EngineError::Unsupported { .. } => {
                Self::client(StatusCode::CONFLICT, ErrorCode::Unsupported, e.to_string())
            }
            _ => Self::internal(e),
        }
    }
}

impl From<QuestionsError> for AppError {
    fn from(e: QuestionsError) -> Self {
        let message = e.to_string();
        match e {
            QuestionsError::Invalid(_) => {
                Self::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
            }
            QuestionsError::NoSuchQuestion(_) | QuestionsError::NotYours(_) => {
                Self::not_found(message)
            }
            QuestionsError::Settled { .. } => {
                Self::client(StatusCode::CONFLICT, ErrorCode::QuestionSettled, message)
            }
            QuestionsError::Claimed(_) => {
                Self::client(StatusCode::CONFLICT, ErrorCode::QuestionClaimed, message)
            }
            QuestionsError::Store(e) => Self::internal(e),
            log @ QuestionsError::AnswerLog { .. } => Self::internal(log),
        }
    }
}

impl From<OrchestratorError> for AppError {
    fn from(e: OrchestratorError) -> Self {
        let message = e.to_string();
        match e {
            OrchestratorError::RepoPath(RepoPathError::Outside { .. })
            | OrchestratorError::ImageNotAllowed { .. }
            | OrchestratorError::Forbidden(_) => {
                Self::client(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
            }
            OrchestratorError::TooManyAgents { .. } => Self::client(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAgents,
                message,
            ),
            OrchestratorError::BadCount { .. }
            | OrchestratorError::EmptyTask
            | OrchestratorError::RepoPath(_)
            | OrchestratorError::BadImage(_)
            | OrchestratorError::NoImage(_)
            | OrchestratorError::Git(
                GitError::NoSuchPath(_)
                | GitError::NotARepository(_)
                | GitError::UnknownRef { .. }
                | GitError::OwnerCannotReach { .. },
            ) => Self::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message),
            OrchestratorError::Git(GitError::Dirty(_) | GitError::Bare(_)) => {
                Self::client(StatusCode::CONFLICT, ErrorCode::RepositoryNotReady, message)
            }
            OrchestratorError::NoSuchAgent(_) => Self::not_found(message),
            OrchestratorError::NotRunning { .. } => {
                Self::client(StatusCode::CONFLICT, ErrorCode::AgentNotRunning, message)
            }
            OrchestratorError::NoContainer(_) => {
                Self::client(StatusCode::GONE, ErrorCode::Gone, message)
            }
            OrchestratorError::Engine(e) => e.into(),
            OrchestratorError::Git(_)
            | OrchestratorError::Io { .. }
            | OrchestratorError::Store(_) => Self::internal(message),
        }
    }
}

impl From<TokenError> for AppError {
    fn from(e: TokenError) -> Self {
        let message = e.to_string();
        match e {
            TokenError::InvalidName(_)
            | TokenError::ReservedName
            | TokenError::AdminToken
            | TokenError::NoTokenToTakeOver(_)
            | TokenError::TakeOverAdmin => {
                Self::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
            }
            TokenError::TakeOverActive(_) => {
                Self::client(StatusCode::CONFLICT, ErrorCode::InvalidRequest, message)
            }
            TokenError::NameTaken(_) => {
                Self::client(StatusCode::CONFLICT, ErrorCode::TokenNameTaken, message)
            }
            TokenError::NoSuchToken(_) => Self::not_found(message),
            TokenError::Store(e) => Self::internal(e),
        }
    }
}

impl From<SettingsError> for AppError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Invalid(_) => Self::client(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                e.to_string(),
            ),
            // The messages name the setting, never its value.
            SettingsError::WrongKey(_)
            | SettingsError::Unreadable(_)
            | SettingsError::CannotSeal(_)
            | SettingsError::Store(_) => Self::internal(e),
        }
    }
}

impl From<WebhookError> for AppError {
    fn from(e: WebhookError) -> Self {
        let message = e.to_string();
        match e {
            WebhookError::NoSecret => Self::client(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                message,
            ),
            WebhookError::MissingSignature
            | WebhookError::MalformedSignature
            | WebhookError::WrongSignature => {
                Self::client(StatusCode::UNAUTHORIZED, ErrorCode::BadSignature, message)
            }
            WebhookError::BadHeader { .. } => {
                Self::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
            }
            WebhookError::Settings(e) => e.into(),
            WebhookError::Store(e) => Self::internal(e),
        }
    }
}

impl From<yard_services::StoreError> for AppError {
    fn from(e: yard_services::StoreError) -> Self {
        Self::internal(e)
    }
}

impl AppError {
    /// The error as a client is told it (in a WebSocket message, say):
    /// a server error's detail is logged here and never sent.
    pub(crate) fn into_api_error(self) -> ApiError {
        if let Some(detail) = &self.detail {
            tracing::error!(status = self.status.as_u16(), code = ?self.code, %detail, "request failed");
        }
        ApiError {
            error: self.message,
            code: self.code,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.detail {
            tracing::error!(status = self.status.as_u16(), code = ?self.code, %detail, "request failed");
        }
        let mut response = (
            self.status,
            Json(ApiError {
                error: self.message,
                code: self.code,
            }),
        )
            .into_response();
        // A bearer token is what is missing; a webhook's signature is not one.
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"agentyard\""),
            );
        }
        response
    }
}
