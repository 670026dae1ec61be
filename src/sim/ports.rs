//! The simulated world behind every port at once. Each engine gets its own
//! handle so the simulator can tell who performed a side effect.

use super::world::{SideEffect, World};
use crate::ports::{
    AcquireRequest, BreakGlass, Clock, ClockSample, CloudApi, ClusterApi, ClusterEvent,
    EventSeries, EvictionOutcome, Instance, LaunchRequest, Lease, LockRecord, MetricsSource, Node,
    OpRecord, Pdb, Pod, PodRef, PortError, PortResult, Reading, Sample, Signal, StateSnapshot,
    StateStore, Timestamp,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Clone)]
pub struct SimPorts {
    world: Arc<Mutex<World>>,
    clock: Arc<dyn Clock>,
    engine: usize,
}

impl SimPorts {
    pub fn new(world: Arc<Mutex<World>>, clock: Arc<dyn Clock>, read_only: bool) -> Self {
        let engine = lock(&world).register_engine(read_only);
        SimPorts {
            world,
            clock,
            engine,
        }
    }

    /// Run `f` on the world brought up to the clock's `now`.
    fn with<R>(&self, f: impl FnOnce(&mut World, usize) -> R) -> R {
        let now = self.clock.now();
        let mut world = lock(&self.world);
        world.advance_to(now);
        f(&mut world, self.engine)
    }

    fn without_advancing<R>(&self, f: impl FnOnce(&mut World, usize) -> R) -> R {
        f(&mut lock(&self.world), self.engine)
    }

    /// A mutating call: checked against the lock holder first.
    fn mutate<R>(&self, what: &str, f: impl FnOnce(&mut World) -> R) -> R {
        self.with(|world, engine| {
            world.check_side_effect(engine, what, SideEffect::Forward);
            f(world)
        })
    }

    /// An effect that undoes one (uncordon, untaint): the abort path of an
    /// expired intent, so the intent's age bound does not apply to it.
    fn mutate_undo<R>(&self, what: &str, f: impl FnOnce(&mut World) -> R) -> R {
        self.with(|world, engine| {
            world.check_side_effect(engine, what, SideEffect::Undo);
            f(world)
        })
    }
}

/// A poisoned lock means a panic elsewhere already failed the run; the
/// world itself is still consistent step by step, so keep going.
pub fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl MetricsSource for SimPorts {
    async fn instant(&self, signal: Signal) -> Reading {
        self.with(|w, _| match w.instant(signal) {
            Some((value, at)) => Reading::Known { value, at },
            None => Reading::unknown(format!("no {} sample: no Ready workers", signal.name())),
        })
    }

    async fn node_cpu(&self) -> PortResult<BTreeMap<String, f64>> {
        Ok(self.with(|w, _| w.workload.node_cpu.clone()))
    }

    async fn range(
        &self,
        signal: Signal,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> PortResult<Vec<Sample>> {
        Ok(self.with(|w, _| w.range(signal, start, end, step)))
    }
}

#[async_trait]
impl ClusterApi for SimPorts {
    async fn nodes(&self) -> PortResult<Vec<Node>> {
        Ok(self.with(|w, _| w.nodes()))
    }

    async fn pods(&self) -> PortResult<Vec<Pod>> {
        Ok(self.with(|w, _| w.pods()))
    }

    async fn pods_on(&self, node: &str) -> PortResult<Vec<Pod>> {
        Ok(self.with(|w, _| w.pods_on(node)))
    }

    async fn pdbs(&self) -> PortResult<Vec<Pdb>> {
        Ok(self.with(|w, _| w.workload.pdb_view(w.now)))
    }

    async fn set_cordoned(&self, node: &str, cordoned: bool) -> PortResult<()> {
        if cordoned {
            self.mutate(&format!("cordon {node}"), |w| {
                w.check_one_node_at_a_time(node);
                w.set_cordoned(node, true)
            })
        } else {
            self.mutate_undo(&format!("uncordon {node}"), |w| w.set_cordoned(node, false))
        }
    }

    async fn remove_startup_taint(&self, node: &str) -> PortResult<()> {
        self.mutate_undo(&format!("untaint {node}"), |w| w.remove_startup_taint(node))
    }

    async fn evict(&self, pod: &PodRef) -> PortResult<EvictionOutcome> {
        Ok(self.mutate(&format!("evict {pod}"), |w| w.evict(&pod.uid)))
    }

    async fn delete_node(&self, node: &str) -> PortResult<()> {
        // Deleting the object of a machine that is gone harms no workload:
        // it finishes a scale-down whose terminate went out, however old
        // its intent (the intent-age rule is for steps that still decide).
        let what = format!("delete node {node}");
        let gone = self.with(|w, _| {
            w.fleet
                .instances
                .get(node)
                .is_none_or(|i| !i.state.is_live())
        });
        if gone {
            self.mutate_undo(&what, |w| w.delete_node(node));
        } else {
            self.mutate(&what, |w| w.delete_node(node));
        }
        Ok(())
    }

    async fn server_version(&self) -> PortResult<String> {
        Ok(super::K3S_VERSION.to_string())
    }

    // Events do not move the world (a writer task's call must not step the
    // simulation at another rhythm than the engine's): the world's own now.
    async fn create_event(&self, event: &ClusterEvent) -> PortResult<()> {
        self.without_advancing(|w, engine| {
            w.check_event_write(engine, &format!("create event {}", event.name));
            let now = w.now;
            w.events.create(event.clone(), now)
        })
    }

    async fn bump_event(
        &self,
        namespace: &str,
        name: &str,
        series: EventSeries,
    ) -> PortResult<bool> {
        self.without_advancing(|w, engine| {
            w.check_event_write(engine, &format!("bump event {name}"));
            let now = w.now;
            w.events.bump(namespace, name, series, now)
        })
    }

    async fn node_of_instance(&self, instance_id: &str) -> PortResult<Option<String>> {
        Ok(self.with(|w, _| {
            w.nodes()
                .into_iter()
                .find(|n| n.instance_id.as_deref() == Some(instance_id))
                .map(|n| n.name)
        }))
    }
}

#[async_trait]
impl CloudApi for SimPorts {
    async fn managed_instances(&self) -> PortResult<Vec<Instance>> {
        Ok(self.with(|w, _| w.managed_instances()))
    }

    async fn instances_for_op(&self, op_id: &str) -> PortResult<Vec<Instance>> {
        Ok(self.with(|w, _| w.instances_for_op(op_id)))
    }

    async fn instance(&self, id: &str) -> PortResult<Option<Instance>> {
        Ok(self.with(|w, _| w.fleet.instances.get(id).map(|i| i.to_domain())))
    }

    async fn master(&self) -> PortResult<Option<Instance>> {
        Ok(self.with(|w, _| w.master()))
    }

    async fn launch(&self, request: &LaunchRequest) -> PortResult<Vec<Instance>> {
        self.mutate(&format!("launch for {}", request.op_id), |w| {
            w.launch(request)
        })
    }

    async fn terminate(&self, ids: &[String]) -> PortResult<()> {
        self.mutate(&format!("terminate {}", ids.join(",")), |w| {
            w.terminate(ids)
        })
    }

    async fn console_output(&self, id: &str) -> PortResult<Option<String>> {
        self.with(|w, _| w.console_output(id))
    }
}

#[async_trait]
impl StateStore for SimPorts {
    async fn read(&self) -> PortResult<StateSnapshot> {
        Ok(self.with(|w, _| w.table.snapshot()))
    }

    async fn acquire(&self, request: &AcquireRequest) -> PortResult<Option<LockRecord>> {
        self.with(|w, engine| {
            if w.engines.get(engine).is_some_and(|e| e.read_only) {
                let now = w.now;
                w.invariants
                    .breach(now, 8, "read-only engine tried to take the lock");
            }
            let granted = w.table.acquire(request);
            if let Some(lock) = &granted {
                let now = w.now;
                w.invariants.on_acquire(now, lock.fence);
                if let Some(track) = w.engines.get_mut(engine) {
                    track.owner = Some(lock.owner.clone());
                    track.lease_until = Some(lock.until);
                    track.granted = Some((lock.lease_id.clone(), lock.fence));
                }
            }
            Ok(granted)
        })
    }

    async fn renew(&self, lease: &Lease, now: Timestamp, duration: Duration) -> PortResult<()> {
        self.with(|w, engine| {
            let until = w.table.renew(lease, now, duration)?;
            if let Some(track) = w.engines.get_mut(engine) {
                track.lease_until = Some(until);
            }
            Ok(())
        })
    }

    async fn release(&self, lease: &Lease) -> PortResult<()> {
        self.with(|w, engine| {
            w.table.release(lease)?;
            if let Some(track) = w.engines.get_mut(engine) {
                track.lease_until = None;
            }
            Ok(())
        })
    }

    async fn write_op(
        &self,
        lease: &Lease,
        previous: &OpRecord,
        next: &OpRecord,
    ) -> PortResult<()> {
        self.with(|w, engine| {
            w.check_lease_sent(engine, lease);
            let old = w.table.record.clone();
            w.table.write_op(lease, previous, next)?;
            let now = w.now;
            w.invariants.on_op_write(now, lease.fence, &old, next);
            w.accounting.on_op_write(&old, next);
            Ok(())
        })
    }

    /// The store's clock is the world's; `Date` has whole seconds.
    async fn clock_sample(&self, local: &dyn Clock) -> PortResult<Option<ClockSample>> {
        let sent = local.now();
        let server = Timestamp(self.clock.now().0.div_euclid(1000) * 1000);
        Ok(Some(ClockSample {
            sent,
            received: local.now(),
            server,
        }))
    }

    async fn force_unlock(&self, audit: &BreakGlass) -> PortResult<LockRecord> {
        self.with(|w, _| {
            let lock = w.table.force_unlock(audit);
            w.invariants.highest_fence = w.invariants.highest_fence.max(lock.fence);
            Ok::<_, PortError>(lock)
        })
    }
}
