//! Task API on port 5758 (`/setTasks`, `/getTasks`, `/tasks`, `/health`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::manager::{Manager, TaskError};
use super::model::Task;

fn error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "code": status.canonical_reason().unwrap_or("Error"),
        "message": message.to_string(),
    }))
}

fn manager_error(e: TaskError) -> HttpResponse {
    match e {
        TaskError::NotFound(_) => error(StatusCode::NOT_FOUND, e),
        TaskError::InvalidName(_) => error(StatusCode::BAD_REQUEST, e),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn run<T: Send + 'static>(
    m: &web::Data<Arc<Manager>>,
    f: impl FnOnce(&Manager) -> Result<T, TaskError> + Send + 'static,
) -> Result<T, HttpResponse> {
    let m = m.get_ref().clone();
    match web::block(move || f(&m)).await {
        Ok(r) => r.map_err(manager_error),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

async fn set_tasks(m: web::Data<Arc<Manager>>, body: web::Bytes) -> HttpResponse {
    let tasks: Vec<Task> = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            );
        }
    };
    match run(&m, move |m| m.sync(tasks)).await {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(r) => r,
    }
}

async fn get_tasks(m: web::Data<Arc<Manager>>) -> HttpResponse {
    match run(&m, |m| Ok(m.list())).await {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(r) => r,
    }
}

async fn create_task(m: web::Data<Arc<Manager>>, body: web::Bytes) -> HttpResponse {
    let task: Task = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            );
        }
    };
    if task.name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "task name is required");
    }
    match run(&m, move |m| m.create(task)).await {
        Ok(t) => HttpResponse::Created().json(t),
        Err(r) => r,
    }
}

async fn get_task(m: web::Data<Arc<Manager>>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match run(&m, move |m| m.get(&name)).await {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(r) => r,
    }
}

async fn delete_task(m: web::Data<Arc<Manager>>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match run(&m, move |m| m.delete(&name)).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(r) => r,
    }
}

fn method_not_allowed() -> actix_web::Route {
    web::route().to(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/setTasks")
            .route(web::post().to(set_tasks))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/getTasks")
            .route(web::get().to(get_tasks))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/tasks")
            .route(web::post().to(create_task))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/tasks/{id}")
            .route(web::get().to(get_task))
            .route(web::delete().to(delete_task))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/health")
            .route(
                web::get().to(|| async {
                    HttpResponse::Ok().json(serde_json::json!({"status": "healthy"}))
                }),
            )
            .default_service(method_not_allowed()),
    );
}
