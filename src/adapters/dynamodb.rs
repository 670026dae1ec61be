//! `StateStore` on DynamoDB (docs/architecture.md §4): the lock item and the operation
//! item in one table. Acquire, renew and release are conditional
//! UpdateItems; every operation write is a TransactWriteItems of a
//! ConditionCheck on the lock plus the Update of the operation item.

use super::aws::port_error;
use super::dynamodb_items::*;
use crate::ports::{
    AcquireRequest, BreakGlass, Clock, ClockSample, Lease, LockRecord, OpRecord, PortError,
    PortResult, StateSnapshot, StateStore, Timestamp,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, ConditionCheck, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus, TransactWriteItem, Update,
};
use std::time::Duration;

/// Attempts of one operation write while DynamoDB reports a transaction
/// conflict (50, 100, 200 ms apart: well inside one call's ceiling).
const CONFLICT_ATTEMPTS: u32 = 4;

/// The cancellation reason of each item of a cancelled transaction, in order.
fn cancel_reasons(
    cancel: &aws_sdk_dynamodb::types::error::TransactionCanceledException,
) -> Vec<String> {
    cancel
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None").to_string())
        .collect()
}

pub struct DynamoStateStore {
    client: Client,
    table: String,
    cluster: String,
}

/// What `init` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum InitOutcome {
    Created,
    Exists,
}

fn build_error(e: impl std::fmt::Display) -> PortError {
    PortError::Invalid(format!("building a DynamoDB request: {e}"))
}

impl DynamoStateStore {
    pub fn new(sdk: &aws_config::SdkConfig, table: &str, cluster: &str) -> Self {
        DynamoStateStore {
            client: Client::new(sdk),
            table: table.to_string(),
            cluster: cluster.to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// `k3s-autoscaler init`: create the table (on-demand billing) and wait
    /// until it is ACTIVE. Idempotent.
    pub async fn create_table(&self) -> PortResult<InitOutcome> {
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        let outcome = match result {
            Ok(_) => InitOutcome::Created,
            Err(e) if e.code() == Some("ResourceInUseException") => InitOutcome::Exists,
            Err(e) => return Err(port_error("CreateTable", e, true)),
        };
        for _ in 0..60 {
            if self.table_status().await? == Some(TableStatus::Active) {
                return Ok(outcome);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(PortError::Unavailable(format!(
            "table {} did not become ACTIVE within 60 s",
            self.table
        )))
    }

    async fn table_status(&self) -> PortResult<Option<TableStatus>> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table.and_then(|t| t.table_status)),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(port_error("DescribeTable", e, false)),
        }
    }

    fn missing_table(&self) -> PortError {
        PortError::NotFound(format!(
            "state table \"{}\" does not exist: create it with `k3s-autoscaler init -c <config>`",
            self.table
        ))
    }

    /// Start-up check: the table must exist (created by `init`).
    pub async fn check_table(&self) -> PortResult<()> {
        match self.table_status().await? {
            Some(_) => Ok(()),
            None => Err(self.missing_table()),
        }
    }

    async fn get(&self, key: String) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| match port_error("GetItem", e, false) {
                PortError::NotFound(_) => self.missing_table(),
                other => other,
            })?;
        Ok(out.item)
    }

    fn lock_condition_values(
        lease: &Lease,
    ) -> [(&'static str, aws_sdk_dynamodb::types::AttributeValue); 4] {
        [
            (":owner", s(lease.owner.clone())),
            (":lease", s(lease.lease_id.clone())),
            (":fence", n(lease.fence)),
            (":true", aws_sdk_dynamodb::types::AttributeValue::Bool(true)),
        ]
    }

    const HOLDS: &'static str =
        "lockOwner = :owner AND leaseId = :lease AND fence = :fence AND scalingInProgress = :true";

    /// A conditional update of the lock item that must hold `lease`.
    async fn update_held(
        &self,
        lease: &Lease,
        what: &str,
        update: &str,
        extra: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> PortResult<()> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(lock_key(&self.cluster)))
            .update_expression(update)
            .condition_expression(Self::HOLDS);
        for (k, v) in Self::lock_condition_values(lease).into_iter().chain(extra) {
            request = request.expression_attribute_values(k, v);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(PortError::PreconditionFailed(format!(
                    "lock lost: {what} refused, lease {} (fence {}) no longer holds the lock",
                    lease.lease_id, lease.fence
                )))
            }
            Err(e) => Err(port_error(what, e, true)),
        }
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn read(&self) -> PortResult<StateSnapshot> {
        let (lock, op) = tokio::join!(
            self.get(lock_key(&self.cluster)),
            self.get(op_key(&self.cluster))
        );
        // An item this version cannot read is named, with the way out, so
        // that it is a message to an operator instead of a wedge.
        let lock = lock?
            .map(|item| lock_from_item(&item))
            .transpose()
            .map_err(|e| {
                PortError::Invalid(format!(
                    "the lock item \"{}\" in table {} cannot be read by this version ({}); once no engine of another version uses the table, reset it with `k3s-autoscaler unlock --force`",
                    lock_key(&self.cluster),
                    self.table,
                    detail(&e)
                ))
            })?;
        let record = op?
            .map(|item| op_record_from_item(&item))
            .transpose()
            .map_err(|e| {
                PortError::Invalid(format!(
                    "the operation item \"{}\" in table {} cannot be read by this version ({}); no operation can start until it is repaired or removed by hand",
                    op_key(&self.cluster),
                    self.table,
                    detail(&e)
                ))
            })?
            .unwrap_or_default();
        Ok(StateSnapshot { lock, record })
    }

    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>> {
        let now_minus_skew = request.now.minus(request.skew_margin);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(lock_key(&self.cluster)))
            .update_expression(
                "SET scalingInProgress = :true, lockOwner = :owner, leaseId = :lease, \
                 lockUntilEpoch = :until, leaseDurationMs = :lease_ms ADD fence :one",
            )
            // An expired lease is taken over; a lease end too small to be
            // milliseconds (an older tool wrote seconds) never counts as
            // expired: its holder may be acting.
            .condition_expression(
                "attribute_not_exists(pk) OR scalingInProgress = :false \
                 OR (lockUntilEpoch < :now_minus_skew AND lockUntilEpoch >= :ms_floor)",
            )
            .expression_attribute_values(":ms_floor", n(MS_FLOOR))
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .expression_attribute_values(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .expression_attribute_values(":owner", s(request.owner.clone()))
            .expression_attribute_values(":lease", s(request.lease_id.clone()))
            .expression_attribute_values(":until", n(request.now.plus(request.lease).0))
            .expression_attribute_values(":lease_ms", n(request.lease.as_millis()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now_minus_skew", n(now_minus_skew.0))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| PortError::Invalid("acquire returned no attributes".into()))?;
                lock_from_item(&item).map(Some)
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(port_error("acquire (UpdateItem)", e, true)),
        }
    }

    async fn renew(&self, lease: &Lease, now: Timestamp, duration: Duration) -> PortResult<()> {
        self.update_held(
            lease,
            "renew (UpdateItem)",
            "SET lockUntilEpoch = :until",
            vec![(":until", n(now.plus(duration).0))],
        )
        .await
    }

    async fn release(&self, lease: &Lease) -> PortResult<()> {
        self.update_held(
            lease,
            "release (UpdateItem)",
            "SET scalingInProgress = :false",
            vec![(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )],
        )
        .await
    }

    async fn write_op(
        &self,
        lease: &Lease,
        previous: &OpRecord,
        next: &OpRecord,
    ) -> PortResult<()> {
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(lock_key(&self.cluster)))
            .condition_expression(Self::HOLDS);
        for (k, v) in Self::lock_condition_values(lease) {
            check = check.expression_attribute_values(k, v);
        }
        let item = op_record_to_item(&self.cluster, next)?;
        // SET every attribute of the new version; REMOVE what it no longer has.
        let mut sets = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(op_key(&self.cluster)));
        for (i, (name, value)) in item.iter().filter(|(k, _)| k.as_str() != PK).enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value.clone());
        }
        let removable = [
            OPERATION,
            PHASE,
            OP_ID,
            KIND,
            UPDATED,
            LAST_SCALE_UP,
            LAST_SCALE_END,
            PAUSE,
            PAUSED_BY,
            PAUSED_UNTIL,
        ];
        let removes: Vec<&str> = removable
            .into_iter()
            .filter(|a| !item.contains_key(*a))
            .collect();
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        // Conditioned on the expected previous version: its revision and phase.
        let condition = match previous.phase() {
            _ if previous.rev == 0 => "attribute_not_exists(pk) OR rev = :prev_rev".to_string(),
            Some(_) => "rev = :prev_rev AND phase = :prev_phase".to_string(),
            None => "rev = :prev_rev AND attribute_not_exists(phase)".to_string(),
        };
        update = update
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_values(":prev_rev", n(previous.rev));
        if let Some(phase) = previous.phase().filter(|_| previous.rev > 0) {
            update = update.expression_attribute_values(":prev_phase", s(phase.as_str()));
        }
        let check = check.build().map_err(build_error)?;
        let update = update.build().map_err(build_error)?;
        // A TransactionConflict cancellation means another transaction held
        // one of the items at that instant: nothing was applied and the
        // same write may pass a moment later. Retried here, briefly, with a
        // fresh token per attempt (a token DynamoDB has seen answers with
        // the first outcome, not a new attempt).
        let mut attempt = 0u32;
        loop {
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(check.clone())
                        .build(),
                )
                .transact_items(TransactWriteItem::builder().update(update.clone()).build())
                // Idempotent for ten minutes: an SDK retry of an applied
                // write is answered "success" rather than applied twice.
                .client_request_token(transaction_token(lease, next, attempt))
                .send()
                .await;
            let cancel = match result {
                Ok(_) => return Ok(()),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                        cancel_reasons(cancel)
                    }
                    _ => return Err(port_error("write operation (TransactWriteItems)", e, true)),
                },
            };
            match cancel.as_slice() {
                [lock, _] if lock == "ConditionalCheckFailed" => {
                    return Err(PortError::PreconditionFailed(format!(
                        "lock lost: the lease no longer holds the lock ({})",
                        cancel.join(", ")
                    )));
                }
                [_, op] if op == "ConditionalCheckFailed" => {
                    return Err(PortError::PreconditionFailed(format!(
                        "operation record moved: not at the expected revision/phase ({})",
                        cancel.join(", ")
                    )));
                }
                reasons
                    if reasons.iter().any(|r| r == "TransactionConflict")
                        && attempt + 1 < CONFLICT_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                reasons if reasons.iter().any(|r| r == "TransactionConflict") => {
                    return Err(PortError::Unavailable(format!(
                        "write operation (TransactWriteItems): transaction conflict {CONFLICT_ATTEMPTS} times in a row ({}); nothing was applied",
                        reasons.join(", ")
                    )));
                }
                reasons => {
                    return Err(PortError::RequestRejected(format!(
                        "write operation (TransactWriteItems): transaction cancelled ({})",
                        reasons.join(", ")
                    )));
                }
            }
        }
    }

    async fn clock_sample(&self, local: &dyn Clock) -> PortResult<Option<ClockSample>> {
        let date = DateHeader::default();
        let sent = local.now();
        self.client
            .describe_table()
            .table_name(&self.table)
            .customize()
            .interceptor(date.clone())
            .send()
            .await
            .map_err(|e| port_error("DescribeTable (clock check)", e, false))?;
        let received = local.now();
        let Some(text) = date.take() else {
            return Ok(None);
        };
        let server = aws_sdk_dynamodb::primitives::DateTime::from_str(
            &text,
            aws_sdk_dynamodb::primitives::DateTimeFormat::HttpDate,
        )
        .map_err(|e| PortError::Invalid(format!("DynamoDB's Date header {text:?}: {e}")))?;
        let server = server
            .to_millis()
            .map_err(|e| PortError::Invalid(format!("DynamoDB's Date header {text:?}: {e}")))?;
        Ok(Some(ClockSample {
            sent,
            received,
            server: Timestamp(server),
        }))
    }

    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord> {
        let note = format!(
            "{} by {}: {}",
            audit.now.to_rfc3339(),
            audit.who,
            audit.reason
        );
        let who = format!("break-glass:{}", audit.who);
        // Atomic on a readable item: the fence goes up by one whatever an
        // engine does meanwhile.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(lock_key(&self.cluster)))
            .update_expression(
                "SET scalingInProgress = :false, lockOwner = :who, leaseId = :none, \
                 lockUntilEpoch = :now, leaseDurationMs = :zero, lastBreakGlass = :note ADD fence :one",
            )
            .condition_expression("attribute_type(fence, :number)")
            .expression_attribute_values(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .expression_attribute_values(":who", s(who.clone()))
            .expression_attribute_values(":none", s(""))
            .expression_attribute_values(":now", n(audit.now.0))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":note", s(note.clone()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":number", s("N"))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match out {
            Ok(out) => out
                .attributes
                .ok_or_else(|| PortError::Invalid("unlock returned no attributes".into()))?,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                // No lock item, or one without a numeric fence (an older
                // tool's, or garbled): replace it whole, with a fence above
                // the last one the operation record saw, and only if it is
                // still unreadable (a concurrent acquire wins).
                let op_fence = match self.get(op_key(&self.cluster)).await? {
                    Some(item) => op_record_from_item(&item)
                        .ok()
                        .and_then(|r| r.op.map(|o| o.fence))
                        .unwrap_or(0),
                    None => 0,
                };
                let mut fresh = Item::new();
                fresh.insert(PK.into(), s(lock_key(&self.cluster)));
                fresh.insert(
                    IN_PROGRESS.into(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(false),
                );
                fresh.insert(OWNER.into(), s(who));
                fresh.insert(LEASE_ID.into(), s(""));
                fresh.insert(FENCE.into(), n(op_fence + 1));
                fresh.insert(UNTIL.into(), n(audit.now.0));
                fresh.insert(LEASE_MS.into(), n(0));
                fresh.insert(LAST_BREAK_GLASS.into(), s(note));
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(fresh.clone()))
                    .condition_expression(
                        "attribute_not_exists(pk) OR NOT attribute_type(fence, :number)",
                    )
                    .expression_attribute_values(":number", s("N"))
                    .send()
                    .await
                    .map_err(|e| port_error("break-glass unlock (PutItem)", e, true))?;
                fresh
            }
            Err(e) => return Err(port_error("break-glass unlock (UpdateItem)", e, true)),
        };
        lock_from_item(&item)
    }
}

/// Keeps the `Date` header of the answer to one request (the service's
/// clock), which the SDK's output types do not carry.
#[derive(Clone, Debug, Default)]
struct DateHeader(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl DateHeader {
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl aws_sdk_dynamodb::config::Intercept for DateHeader {
    fn name(&self) -> &'static str {
        "k3s-autoscaler DateHeader"
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(date.to_string());
        }
        Ok(())
    }
}

/// A port error's text without its kind prefix, for wrapping in another.
fn detail(e: &PortError) -> String {
    let text = e.to_string();
    text.split_once(": ")
        .map_or(text.clone(), |(_, rest)| rest.to_string())
}
