//! Liveness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::Principal;
use super::AppState;
use crate::domain::Role;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness: the process answers and its database can be read.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health), (status = 500)))]
async fn healthz(State(s): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    // Read to prove the database answers; the journal's head is for admins (/v1/audit/head),
    // not for anyone who can reach the port.
    s.app.store.head().await?;
    Ok(axum::Json(Health { status: "ok" }))
}

/// Prometheus text exposition, for the operator.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)), security(("bearer" = [])))]
async fn metrics(State(s): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    p.allow(&[Role::Admin])?;
    let (batches, commands, largest) = s.app.store.write_stats().snapshot();
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(batches, commands, largest),
    )
        .into_response())
}
