//! The one error type every port speaks. Adapters translate their backend's
//! failures into it; the engine and runtime decide what each kind means.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// The backend could not be reached or answered 5xx; trying again later may work.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The backend asked us to slow down (throttling, HTTP 429 on a read).
    #[error("throttled: {0}")]
    Throttled(String),
    /// The request may or may not have been applied (timeout, lost response).
    /// Callers resolve it by reading back, never by assuming either way.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A conditional write found the world not as expected: the lock moved,
    /// the fence is stale, or the operation is not in the expected phase.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The thing asked for does not exist (e.g. the state table before `init`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request was refused before any call: unmanaged instance, read-only mode.
    #[error("refused: {0}")]
    Refused(String),
    /// EC2 has no capacity (or the account no room) for this instance type
    /// in this subnet right now; another type or subnet may have.
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    /// An idempotency token came back with other parameters than it was
    /// first sent with (EC2's `IdempotentParameterMismatch`): what that
    /// first request launched is found by its tag, never launched again.
    #[error("idempotency token reused: {0}")]
    TokenReused(String),
    /// The backend answered something we cannot interpret.
    #[error("invalid response: {0}")]
    Invalid(String),
    /// The service refused the request itself as malformed (DynamoDB's
    /// `ValidationException`, a reused idempotency token): the request we
    /// built is wrong, so no retry can succeed and it is never "lock lost".
    #[error("request rejected as invalid (a bug: please report): {0}")]
    RequestRejected(String),
}

impl PortError {
    /// The service refused the request as such, and the same request will
    /// be refused again: a Kubernetes 4xx other than 404, 409 and 429, a
    /// malformed or unauthorised call. The step ends instead of retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PortError::Invalid(_) | PortError::Refused(_) | PortError::RequestRejected(_)
        )
    }

    /// Whether a later attempt of the same call may succeed without anyone
    /// changing anything: the executor retries these at the next tick.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PortError::Unavailable(_) | PortError::Throttled(_) | PortError::OutcomeUnknown(_)
        )
    }
}

pub type PortResult<T> = Result<T, PortError>;
