//! Container restart back-off, as the kubelet does it: exponential after quick failures,
//! reset once a container has run long enough.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay before the second restart of a crash loop (the first is immediate).
    pub initial: Duration,
    pub max: Duration,
    /// A run at least this long resets the crash loop.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// What to do after a container exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartDecision {
    pub delay: Duration,
    /// The pod is in a crash loop: report `CrashLoopBackOff` while waiting.
    pub crash_loop: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    quick_failures: u32,
}

impl Backoff {
    /// Records an exit after `ran` and returns the delay before the next start.
    pub fn on_exit(&mut self, policy: &BackoffPolicy, ran: Duration) -> RestartDecision {
        if ran >= policy.reset_after {
            self.quick_failures = 0;
        }
        self.quick_failures = self.quick_failures.saturating_add(1);
        if self.quick_failures == 1 {
            return RestartDecision {
                delay: Duration::ZERO,
                crash_loop: false,
            };
        }
        let exp = (self.quick_failures - 2).min(30);
        let delay = policy.initial.saturating_mul(1u32 << exp).min(policy.max);
        RestartDecision {
            delay,
            crash_loop: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_max_and_resets() {
        let p = BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            reset_after: Duration::from_secs(10),
        };
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let d: Vec<_> = (0..5).map(|_| b.on_exit(&p, quick)).collect();
        assert_eq!(
            d[0],
            RestartDecision {
                delay: Duration::ZERO,
                crash_loop: false
            }
        );
        assert_eq!(d[1].delay, Duration::from_millis(100));
        assert!(d[1].crash_loop);
        assert_eq!(d[2].delay, Duration::from_millis(200));
        assert_eq!(d[3].delay, Duration::from_millis(350));
        assert_eq!(d[4].delay, Duration::from_millis(350));
        let after_long = b.on_exit(&p, Duration::from_secs(11));
        assert_eq!(
            after_long,
            RestartDecision {
                delay: Duration::ZERO,
                crash_loop: false
            }
        );
    }
}
