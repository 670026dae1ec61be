//! Config → engine settings: the only place the two vocabularies meet.

use crate::config::Config;
use crate::engine::settings::{CircuitRules, LaunchRules, SanityRules};
use crate::engine::{DrainRules, LeaseRules, Policy, Settings};

pub fn engine_settings(config: &Config) -> Settings {
    let p = &config.policy;
    Settings {
        policy: Policy {
            cpu_up_percent: p.cpu_up_percent,
            cpu_up_for: p.cpu_up_for.get(),
            pending_for: p.pending_for.get(),
            cpu_down_percent: p.cpu_down_percent,
            idle_for: p.idle_for.get(),
            cpu_target_percent: p.cpu_target_percent,
            min_workers: p.min_workers,
            max_workers: p.max_workers,
            scale_up_cooldown: p.scale_up_cooldown.get(),
            scale_down_cooldown: p.scale_down_cooldown.get(),
            max_scale_up_batch: p.max_scale_up_batch,
            predictive: p.predictive.enabled,
        },
        drain: DrainRules {
            timeout: config.drain.timeout.get(),
            evict_statefulsets: config.drain.evict_statefulsets,
            delete_emptydir_data: config.drain.delete_emptydir_data,
        },
        lease: LeaseRules {
            lease: config.lock.lease.get(),
            skew_margin: config.lock.skew_margin.get(),
        },
        join_timeout: config.engine.join_timeout.get(),
        interval: config.engine.interval.get(),
        launch: LaunchRules {
            instance_types: config.ec2.instance_types.clone(),
            subnets: config.ec2.subnets.clone(),
            k3s_version: config.ec2.k3s_version.clone(),
        },
        max_staleness: config.prometheus.max_staleness.get(),
        sanity: SanityRules {
            max_unready_percent: config.engine.max_unready_percent,
            worker_selector: config.kubernetes.worker_selector.clone(),
            ..SanityRules::default()
        },
        circuit: CircuitRules {
            enabled: config.circuit.enabled,
            never_joined: config.circuit.never_joined,
            failed_operations: config.circuit.failed_operations,
            window: config.circuit.window.get(),
            open_for: config.circuit.open_for.get(),
        },
        ..Settings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_the_engine_defaults() {
        assert_eq!(engine_settings(&Config::default()), Settings::default());
    }
}
