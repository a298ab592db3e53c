//! `/api/questions`: the questions agents asked, for people to answer.
//! A person's credential only (an agent's is refused before this); a user
//! sees and answers their own agents' questions, an admin everyone's.

use axum::extract::State;
use axum::{Extension, Json};
use yard_api::{AnswerRequest, ApiError, QuestionList, QuestionView};

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::extract::{JsonBody, PathArg};

/// List the pending questions
///
/// Oldest first; a user sees their own agents' questions, an admin all.
#[utoipa::path(
    get,
    path = "/api/questions",
    tag = "questions",
    responses(
        (status = 200, description = "The pending questions", body = QuestionList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<QuestionList>, AppError> {
    let pending = state.questions.pending(&caller.person()).await?;
    Ok(Json(QuestionList {
        questions: pending.iter().map(QuestionView::from).collect(),
    }))
}

/// Answer a question
///
/// The answer must fit the question (`yes`/`no`, `allow`/`deny`, one of
/// the options, or text); the agent waiting on it gets it at once. A
/// question takes one answer.
#[utoipa::path(
    post,
    path = "/api/questions/{id}/answer",
    tag = "questions",
    params(("id" = String, Path, description = "The question's id")),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "Answered", body = QuestionView),
        (status = 400, description = "The answer does not fit the question", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "No such question (or not yours)", body = ApiError),
        (status = 409, description = "Already answered, timed out or cancelled", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn answer(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(id): PathArg<String>,
    JsonBody(request): JsonBody<AnswerRequest>,
) -> Result<Json<QuestionView>, AppError> {
    let answered = state
        .questions
        .answer(&caller.person(), &id, &request.answer, request.reason)
        .await?;
    Ok(Json(QuestionView::from(&answered)))
}
