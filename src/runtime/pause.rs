//! The cluster-wide pause (`k3s-autoscaler pause` / `resume`, and `P` in
//! the console): a field of the operation record, so setting it is a fenced
//! write like any other, and every engine on any host reads it every tick.

use super::ids::IdSource;
use super::lease::{Acquired, LockClient};
use crate::engine::LeaseRules;
use crate::ports::{Clock, Pause, StateStore};
use std::sync::Arc;
use std::time::Duration;

/// How long to keep trying for the lock: engines hold it only while a tick
/// works, so it comes free quickly unless an operation is mid-drain.
const PATIENCE: Duration = Duration::from_secs(90);

/// Set (`Some`) or clear (`None`) the pause, as `who`. Returns the previous one.
pub async fn set_pause(
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    rules: &LeaseRules,
    who: &str,
    pause: Option<(Duration, String)>,
) -> Result<Option<Pause>, String> {
    let ids = Arc::new(IdSource::random());
    let owner = format!("pause:{who}:{}", ids.uuid());
    let lock = LockClient::new(state.clone(), clock.clone(), rules.clone(), owner, ids).for_pause();
    let started = clock.mono();
    let held = loop {
        match lock.acquire().await {
            Ok(Acquired::Held(h)) => break h,
            // Not checked for this client (`for_pause`).
            Ok(Acquired::ClockSkew(why)) => return Err(why),
            Ok(Acquired::Busy(holder)) => {
                if clock.mono().since(started) > PATIENCE {
                    let by = holder.map(|l| l.owner).unwrap_or_else(|| "someone".into());
                    return Err(format!(
                        "the lock stayed held by {by} for {PATIENCE:?}; try again"
                    ));
                }
            }
            Err(e) if e.is_transient() && clock.mono().since(started) <= PATIENCE => {}
            Err(e) => return Err(format!("taking the lock: {e}")),
        }
        clock.sleep(Duration::from_secs(1)).await;
    };
    let result = async {
        let current = state.read().await.map_err(|e| e.to_string())?.record;
        let now = clock.now();
        let mut next = current.clone();
        next.rev += 1;
        next.pause = pause.map(|(d, reason)| Pause {
            by: who.to_string(),
            reason,
            since: now,
            until: now.plus(d),
            circuit: false,
        });
        state
            .write_op(&held.lease, &current, &next)
            .await
            .map_err(|e| format!("writing the pause: {e}"))?;
        Ok(current.pause)
    }
    .await;
    lock.release(&held).await;
    result
}
