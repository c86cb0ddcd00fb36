//! The executor's HTTP serving: one server for both APIs.
//!
//! Every sandbox pod runs an executor, so its start and exit are paid on every pod start. One
//! server means one acceptor thread and one set of workers for the execd API and the task API
//! (each listener keeps its own app: the execd access token never applies to the task API),
//! instead of a server with its own threads per API.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::map_config;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, middleware, web};

use crate::execd::{self, state::Shared};
use crate::tasks::{self, manager::Manager};

/// Largest request body the execd API buffers (uploads stream and are not bound by it).
const PAYLOAD_LIMIT: usize = 8 * 1024 * 1024;
/// Clients trickling their headers (slow-loris) are cut off after this.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client to go (actix-web's server default).
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What to serve: the execd API always, the task API when it is enabled.
pub struct Apis {
    pub execd: (Shared, TcpListener),
    pub tasks: Option<(Arc<Manager>, TcpListener)>,
}

/// Builds the server on already bound listeners; `workers` threads serve both APIs.
pub fn serve(apis: Apis, workers: usize) -> std::io::Result<Server> {
    let (state, execd_listener) = apis.execd;
    let execd_data = web::Data::new(state);
    let mut builder = Server::build()
        .workers(workers.max(1))
        .disable_signals()
        .listen("execd", execd_listener, move || {
            http(
                App::new()
                    .app_data(execd_data.clone())
                    .app_data(web::PayloadConfig::new(PAYLOAD_LIMIT))
                    .wrap(middleware::from_fn(execd::routes::auth))
                    .configure(execd::routes::configure),
            )
        })?;
    if let Some((manager, listener)) = apis.tasks {
        let data = web::Data::new(manager);
        builder = builder.listen("tasks", listener, move || {
            http(
                App::new()
                    .app_data(data.clone())
                    .configure(tasks::api::configure),
            )
        })?;
    }
    Ok(builder.run())
}

/// HTTP/1 over TCP for one app. Stream events are small writes: without TCP_NODELAY Nagle's
/// algorithm would hold them back.
fn http<T, B>(
    app: App<T>,
) -> impl ServiceFactory<
    actix_web::rt::net::TcpStream,
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    HttpService::build()
        .client_request_timeout(REQUEST_HEAD_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .finish(map_config(app, |_| AppConfig::default()))
        .tcp()
}
