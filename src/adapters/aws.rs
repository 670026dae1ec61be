//! Shared AWS plumbing: the SDK configuration from the default provider
//! chain (overridable per config file), and the translation of SDK errors
//! into port errors.

use crate::config::AwsConfig;
use crate::ports::PortError;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Per-call ceiling: past it the outcome of a write is unknown and is
/// resolved by reading back.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

// The engine starts a launch or terminate only if it lands inside the lease
// at `EFFECT_CALL_CEILING`; a longer call could land after the lease ended.
const _: () = assert!(
    OPERATION_TIMEOUT.as_secs() <= crate::engine::lock::EFFECT_CALL_CEILING.as_secs(),
    "EC2 calls may outlast the engine's per-effect ceiling"
);

/// Credentials and region from the default chain (environment, profile,
/// instance role); `[aws]` overrides the region, profile and endpoint. With
/// no `endpoint_url`, the SDK's own `AWS_ENDPOINT_URL(_DYNAMODB|_EC2)`
/// environment variables still apply.
pub async fn sdk_config(aws: &AwsConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build(),
    );
    if let Some(region) = &aws.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The message for the case every new user meets first.
pub const NO_CREDENTIALS: &str = "no AWS credentials found (environment, profile, instance role)";

/// Resolve the credentials once, so that "none at all" is said in those
/// words instead of as the last provider's failure ("IMDS is disabled").
pub async fn check_credentials(sdk: &aws_config::SdkConfig) -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_credential_types::provider::error::CredentialsError;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(NO_CREDENTIALS.into());
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(CredentialsError::CredentialsNotLoaded(_)) => Err(NO_CREDENTIALS.into()),
        Err(e) => Err(format!(
            "AWS credentials could not be loaded: {}",
            source_text(&e)
        )),
    }
}

/// Error codes that mean "slow down", whatever the service.
const THROTTLING: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyRequestsException",
    "RequestThrottled",
];

/// Error codes that mean "the request we built is malformed": a bug in
/// this tool, never a condition of the world.
const MALFORMED: [&str; 8] = [
    "ValidationException",
    "SerializationException",
    "IdempotentParameterMismatchException",
    "MissingParameter",
    "UnknownParameter",
    "InvalidParameterCombination",
    "MalformedQueryString",
    "InvalidAction",
];

/// Translate an SDK error. `mutating`: whether the request could have
/// changed something, in which case anything short of a clear answer is
/// "outcome unknown", never "failed".
pub fn port_error<E>(what: &str, err: SdkError<E, HttpResponse>, mutating: bool) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let unknown_or = |reason: String| {
        if mutating {
            PortError::OutcomeUnknown(reason)
        } else {
            PortError::Unavailable(reason)
        }
    };
    match &err {
        SdkError::ConstructionFailure(_) => PortError::Invalid(format!(
            "{what}: request could not be built: {}",
            source_text(&err)
        )),
        SdkError::TimeoutError(_) => PortError::OutcomeUnknown(format!("{what}: timed out")),
        SdkError::DispatchFailure(d) => {
            let reason = format!("{what}: {}", source_text(&err));
            if d.is_io() && !mutating {
                PortError::Unavailable(reason)
            } else {
                unknown_or(reason)
            }
        }
        SdkError::ResponseError(_) => unknown_or(format!(
            "{what}: unreadable response: {}",
            source_text(&err)
        )),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_string();
            let message = service.err().message().unwrap_or("").to_string();
            let status = service.raw().status().as_u16();
            let text = format!("{what}: {code}: {message}");
            if THROTTLING.contains(&code.as_str()) {
                PortError::Throttled(text)
            } else if MALFORMED.contains(&code.as_str()) {
                PortError::RequestRejected(text)
            } else if code == "TransactionConflictException" {
                // Another transaction holds the item right now; the request
                // was refused, not applied, and may pass in a moment.
                PortError::Unavailable(text)
            } else if status >= 500 || code == "InternalServerError" || code == "ServiceUnavailable"
            {
                unknown_or(text)
            } else if code == "ResourceNotFoundException" || code.ends_with(".NotFound") {
                PortError::NotFound(text)
            } else {
                PortError::Invalid(text)
            }
        }
        _ => unknown_or(format!("{what}: {}", source_text(&err))),
    }
}

/// The innermost cause, which is where the SDK puts the useful sentence.
fn source_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(cause) = current {
        text = cause.to_string();
        current = cause.source();
    }
    text
}
