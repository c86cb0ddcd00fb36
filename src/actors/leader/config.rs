//! Leader election settings and their validation.

use std::time::Duration;

use thiserror::Error;

/// Where the Lease lives, who we are, and the client-go timing knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub namespace: String,
    /// Written to `spec.holderIdentity`; unique per process (pod name, hostname + uuid).
    pub identity: String,
    /// How long followers wait after the last observed renew before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps acting after its last successful renew.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Where this replica serves the SDK API, published on the Lease while it leads so
    /// followers can forward to it.
    pub advertise_address: Option<String>,
}

/// Why a [`LeaderConfig`] cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LeaderConfigError {
    #[error("leader election config: {0} must not be empty")]
    Empty(&'static str),
    #[error(
        "leader election config: lease_duration ({0:?}) must be at least 1s \
         (leaseDurationSeconds is a whole number of seconds)"
    )]
    LeaseTooShort(Duration),
    #[error(
        "leader election config: renew_deadline ({renew_deadline:?}) must be shorter than \
         lease_duration ({lease_duration:?}), or a deposed leader could still write after \
         its lease expired"
    )]
    RenewDeadlineTooLong {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "leader election config: retry_period ({retry_period:?}) must be shorter than \
         renew_deadline ({renew_deadline:?}), or the leader gets no renew attempt in time"
    )]
    RetryPeriodTooLong {
        retry_period: Duration,
        renew_deadline: Duration,
    },
    #[error("leader election config: retry_period must be greater than zero")]
    ZeroRetryPeriod,
}

impl LeaderConfig {
    /// A config with client-go's defaults: lease 15 s, renew deadline 10 s, retry 2 s.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            advertise_address: None,
        }
    }

    pub fn validate(&self) -> Result<(), LeaderConfigError> {
        for (field, value) in [
            ("lease_name", &self.lease_name),
            ("namespace", &self.namespace),
            ("identity", &self.identity),
        ] {
            if value.is_empty() {
                return Err(LeaderConfigError::Empty(field));
            }
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err(LeaderConfigError::LeaseTooShort(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaderConfigError::RenewDeadlineTooLong {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period.is_zero() {
            return Err(LeaderConfigError::ZeroRetryPeriod);
        }
        if self.retry_period >= self.renew_deadline {
            return Err(LeaderConfigError::RetryPeriodTooLong {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// `spec.leaseDurationSeconds`, rounded up so others never wait less than we assume.
    pub(super) fn lease_seconds(&self) -> i32 {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}
