//! `/api/questions`: the questions agents asked, for people to answer.
//! A person's credential only (an agent's is refused before this); a user
//! sees and answers their own agents' questions, an admin everyone's.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use yard_api::{
    AnswerRequest, ApiError, ErrorCode, QuestionClientMessage, QuestionList, QuestionServerMessage,
    QuestionView,
};
use yard_core::Person;
use yard_services::{ClientId, Questions, YardEvent};

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

/// How often the yard pings an answering client; one that has sent
/// nothing (not even a pong) for three of these is gone, and what it
/// showed is offered again.
const PING_EVERY: Duration = Duration::from_secs(10);
/// The largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// The live channel for answering clients
///
/// A WebSocket (a person's token or the page's session; never an agent's).
/// The yard sends every pending question at connect, then each one asked
/// or settled, and claims; the client claims a question to show it,
/// answers it, or releases it, with JSON text messages (see
/// `QuestionClientMessage` and `QuestionServerMessage`). A client that
/// disconnects releases what it showed at once. Agents never wait on a
/// client: their wait races the answer against their deadline.
#[utoipa::path(
    get,
    path = "/api/questions/ws",
    tag = "questions",
    responses(
        (status = 101, description = "Connected"),
        (status = 400, description = "Not a WebSocket request", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = upgrade.map_err(|rejection| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!(
                "/api/questions/ws speaks WebSocket: {}",
                rejection.body_text()
            ),
        )
    })?;
    let person = caller.person();
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let client = state.questions.connect();
            tracing::debug!(client = client.0, person = %person.owner.name, "answering client connected");
            if let Err(e) = AnsweringClient::new(&state, person, client)
                .serve(socket)
                .await
            {
                tracing::debug!(client = client.0, error = %e, "answering client ended");
            }
            state.questions.disconnect(client);
        }))
}

/// One connected answering client.
struct AnsweringClient<'s> {
    state: &'s AppState,
    person: Person,
    client: ClientId,
    /// The questions this client was told about and may see claims of.
    known: HashSet<String>,
}

impl<'s> AnsweringClient<'s> {
    fn new(state: &'s AppState, person: Person, client: ClientId) -> Self {
        Self {
            state,
            person,
            client,
            known: HashSet::new(),
        }
    }

    async fn serve(mut self, socket: WebSocket) -> Result<(), axum::Error> {
        let (mut to_client, mut from_client) = socket.split();
        // Subscribed before the first snapshot: nothing asked in between
        // is missed.
        let mut events = self.state.bus.subscribe();
        send(&mut to_client, self.snapshot().await).await?;
        let mut pings = tokio::time::interval(PING_EVERY);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                message = from_client.next() => {
                    let Some(message) = message else { return Ok(()) };
                    last_heard = Instant::now();
                    let reply = match message? {
                        Message::Text(text) => self.handle(text.as_str()).await,
                        Message::Binary(_) => Some(refused(
                            None,
                            ErrorCode::InvalidJson,
                            "messages are JSON text, not binary".to_owned(),
                        )),
                        Message::Close(_) => return Ok(()),
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some(reply) = reply {
                        send(&mut to_client, reply).await?;
                    }
                }
                event = events.recv() => {
                    let reply = match event {
                        Ok(event) => self.relay(event),
                        // Fell behind: start again from what is pending.
                        Err(RecvError::Lagged(_)) => Some(self.snapshot().await),
                        Err(RecvError::Closed) => return Ok(()),
                    };
                    if let Some(reply) = reply {
                        send(&mut to_client, reply).await?;
                    }
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() > PING_EVERY * 3 {
                        tracing::debug!(client = self.client.0, "answering client silent; dropping it");
                        return Ok(());
                    }
                    to_client.send(Message::Ping(Bytes::new())).await?;
                }
                () = self.state.shutdown.cancelled() => {
                    let _ = to_client.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
        }
    }

    /// Every pending question this person may answer, and the claims.
    async fn snapshot(&mut self) -> QuestionServerMessage {
        match self.state.questions.pending(&self.person).await {
            Ok(pending) => {
                let claims = self.state.questions.claims();
                self.known = pending.iter().map(|q| q.id.clone()).collect();
                QuestionServerMessage::Pending {
                    claimed: pending
                        .iter()
                        .filter(|q| claims.get(&q.id).is_some_and(|c| *c != self.client))
                        .map(|q| q.id.clone())
                        .collect(),
                    questions: pending.iter().map(QuestionView::from).collect(),
                }
            }
            Err(e) => error_message(None, e.into()),
        }
    }

    /// What the client is told of a yard event, if anything.
    fn relay(&mut self, event: YardEvent) -> Option<QuestionServerMessage> {
        match event {
            YardEvent::Question(question) if Questions::visible_to(&self.person, &question) => {
                let view = QuestionView::from(&question);
                if question.outcome.is_pending() {
                    self.known.insert(question.id);
                    Some(QuestionServerMessage::Asked { question: view })
                } else {
                    self.known.remove(&question.id);
                    Some(QuestionServerMessage::Settled { question: view })
                }
            }
            YardEvent::QuestionClaim { id, holder } if self.known.contains(&id) => {
                Some(match holder {
                    Some(holder) => QuestionServerMessage::Claimed {
                        mine: holder == self.client.0,
                        id,
                    },
                    None => QuestionServerMessage::Released { id },
                })
            }
            _ => None,
        }
    }

    /// Carries out one client message; returns the reply, if any (the
    /// effects of a claim or an answer reach every client as events).
    async fn handle(&mut self, text: &str) -> Option<QuestionServerMessage> {
        let message: QuestionClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                return Some(refused(
                    None,
                    ErrorCode::InvalidJson,
                    format!("not a message this channel takes: {e}"),
                ));
            }
        };
        let questions = &self.state.questions;
        let (id, done) = match message {
            QuestionClientMessage::Claim { id } => {
                let done = questions.claim(&self.person, self.client, &id).await;
                (id, done.map(drop))
            }
            QuestionClientMessage::Release { id } => {
                questions.release(self.client, &id);
                (id, Ok(()))
            }
            QuestionClientMessage::Answer { id, answer, reason } => {
                let done = questions
                    .answer_as(&self.person, Some(self.client), &id, &answer, reason)
                    .await;
                if done.is_ok() {
                    // The agent that waits was just woken on this thread:
                    // it goes first, before this client hears of the answer.
                    tokio::task::yield_now().await;
                }
                (id, done.map(drop))
            }
        };
        done.err().map(|e| error_message(Some(id), e.into()))
    }
}

async fn send(
    to_client: &mut futures::stream::SplitSink<WebSocket, Message>,
    message: QuestionServerMessage,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(&message).unwrap_or_default();
    to_client.send(Message::Text(text.into())).await
}

fn refused(id: Option<String>, code: ErrorCode, error: String) -> QuestionServerMessage {
    QuestionServerMessage::Error { id, code, error }
}

fn error_message(id: Option<String>, error: AppError) -> QuestionServerMessage {
    let ApiError { error, code } = error.into_api_error();
    refused(id, code, error)
}
