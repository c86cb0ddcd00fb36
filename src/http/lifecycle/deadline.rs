//! Time limits on slow clients: a request body must arrive within
//! `server.body_read_timeout_seconds` (a client that announces a body and never sends it
//! would otherwise hold a connection forever); headers are bounded by the server's client
//! request timeout.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use futures::StreamExt;

type BoxedStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, PayloadError>>>>;

/// Headers must arrive within this long after the connection opens (actix closes it then).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `payload` failing with a `TimedOut` I/O error once `timeout` has passed.
pub fn with_deadline(payload: Payload, timeout: Duration) -> Payload {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(item)) => Some((item, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((Err(timed_out(timeout)), None)),
        }
    });
    Payload::from(Box::pin(stream) as BoxedStream)
}

fn timed_out(timeout: Duration) -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the request body was not received within {:?}", timeout),
    ))
}

/// Whether a payload error is our body deadline.
pub fn is_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::BoxedStream;
    use super::*;

    #[actix_rt::test]
    async fn a_body_that_never_ends_times_out() {
        let never: BoxedStream = Box::pin(futures::stream::pending());
        let mut p = with_deadline(Payload::from(never), Duration::from_millis(50));
        let started = std::time::Instant::now();
        let item = p.next().await;
        assert!(
            matches!(item, Some(Err(ref e)) if is_timeout(e)),
            "{item:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(p.next().await.is_none());
    }

    #[actix_rt::test]
    async fn a_prompt_body_passes_through() {
        let body: BoxedStream = Box::pin(futures::stream::iter([Ok(bytes::Bytes::from_static(
            b"{}",
        ))]));
        let mut p = with_deadline(Payload::from(body), Duration::from_secs(5));
        assert_eq!(p.next().await.unwrap().unwrap(), &b"{}"[..]);
        assert!(p.next().await.is_none());
    }
}
