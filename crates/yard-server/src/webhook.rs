//! `POST /webhook/gitea`: the forge's webhook. It carries no bearer token:
//! the signature over the body (`X-Gitea-Signature`) is its credential. This
//! handler only adapts HTTP: the headers and the forge's JSON in, the
//! receipt out; checking and recording are the `ForgeWebhooks` service's.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use yard_api::{ApiError, ErrorCode, GiteaPayload, WebhookReceipt, WebhookStatus};
use yard_services::{CommentFacts, Delivery, IssueFacts, Receipt};

use crate::AppState;
use crate::error::AppError;
use crate::extract::RawBody;

const SIGNATURE: &str = "X-Gitea-Signature";
const DELIVERY: &str = "X-Gitea-Delivery";
const EVENT: &str = "X-Gitea-Event";

/// A header's text; one that is not visible ASCII reads as empty, which
/// the checks after refuse.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or_default())
}

fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, AppError> {
    header(headers, name).ok_or_else(|| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("the delivery has no {name} header; it does not look like the forge's"),
        )
    })
}

/// Receive a delivery from the forge (Gitea)
///
/// Needs no token: `X-Gitea-Signature` must be the hex HMAC-SHA256 of the
/// body with the forge's webhook secret (`forge.webhook_secret`). A
/// delivery is recorded by `X-Gitea-Delivery`; a redelivery is answered
/// `duplicate` and not acted on again. Events `issues`, `issue_comment`,
/// `pull_request` and `push` are `accepted`, any other `ignored`.
#[utoipa::path(
    post,
    path = "/webhook/gitea",
    tag = "forge",
    params(
        ("X-Gitea-Signature" = String, Header, description = "Hex HMAC-SHA256 of the body with the webhook's secret"),
        ("X-Gitea-Delivery" = String, Header, description = "The forge's id for the delivery, the same on a redelivery"),
        ("X-Gitea-Event" = String, Header, description = "The event, e.g. issues"),
    ),
    request_body(content = Object, description = "The forge's event, as JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted, ignored or a duplicate", body = WebhookReceipt),
        (status = 400, description = "Not JSON, or a delivery id or event missing", body = ApiError),
        (status = 401, description = "A missing, malformed or wrong signature", body = ApiError),
        (status = 413, description = "A body over 1 MiB", body = ApiError),
        (status = 503, description = "The forge's webhook secret is not set", body = ApiError),
    )
)]
pub(crate) async fn gitea(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookReceipt>, AppError> {
    let verified = state
        .webhooks
        .verify(header(&headers, SIGNATURE), &body)
        .await?;
    let payload: GiteaPayload = serde_json::from_slice(verified.body()).map_err(|e| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("the body is not the forge's JSON event: {e}"),
        )
    })?;
    let assignee = payload.assignee.map(|a| a.login);
    let issue = payload.issue.map(|issue| IssueFacts {
        number: issue.number,
        title: issue.title,
        body: issue.body,
        assignees: assignee
            .into_iter()
            .chain(issue.assignees.into_iter().map(|a| a.login))
            .filter(|login| !login.is_empty())
            .collect(),
    });
    let delivery = Delivery {
        id: required(&headers, DELIVERY)?.to_owned(),
        event: required(&headers, EVENT)?.to_owned(),
        action: payload.action,
        repository: payload.repository.and_then(|r| r.full_name),
        issue,
        comment: payload.comment.map(|comment| CommentFacts {
            id: comment.id,
            author: comment.user.map(|u| u.login).unwrap_or_default(),
            body: comment.body,
        }),
        is_pull: payload.is_pull,
    };
    let status = match state.webhooks.receive(verified, delivery).await? {
        Receipt::Accepted => WebhookStatus::Accepted,
        Receipt::Ignored => WebhookStatus::Ignored,
        Receipt::Duplicate => WebhookStatus::Duplicate,
    };
    Ok(Json(WebhookReceipt { status }))
}
