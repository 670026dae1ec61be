//! The fault schedule of a chaos run: which faults, how often, and how many
//! were actually injected. Every draw comes from the run's seed.

use crate::ports::Timestamp;
use crate::rng::Rng;
use std::collections::BTreeMap;

/// Every kind of fault the harness injects (the README's Reliability section lists them in words).
pub const KINDS: [&str; 31] = [
    "crash_after_intent",
    "crash_after_launch",
    "crash_mid_drain",
    "crash_after_terminate",
    "pause_beyond_lease",
    "lock_stolen",
    "lost_acquire_response",
    "lost_renew_response",
    "lost_write_response",
    "lost_launch_response",
    "store_throttled",
    "store_5xx",
    "ec2_throttled",
    "ec2_5xx",
    "insufficient_capacity",
    "invisible_instance",
    "never_join",
    "late_join",
    "flap_not_ready",
    "pdb_blocked_eviction",
    "eviction_500",
    "external_terminate",
    "slow_call",
    // Faults from outside the model: a write the
    // service refuses as malformed, a transaction conflict, a host
    // suspended right after renewing its lease, an intent left behind while
    // every engine was away for longer than its bound.
    "store_validation_error",
    "transaction_conflict",
    "suspended_past_lease",
    "stale_intent",
    // A hostile world: the node list comes back
    // empty (a misspelled selector, another cluster's context, an API
    // server answering []), or one node is missing from it (its worker
    // label removed by hand). The instances run on; only the view lies.
    "selector_typo",
    "label_removed",
    // A worker's node-exporter scrape failing for a few minutes (a
    // saturated node times out first): its per-node CPU series is missing
    // and the worker average covers only the rest, so it reads low.
    "cpu_series_missing",
    // The Kubernetes API answering for another cluster for a few minutes
    // (a kubeconfig context, a DNS name or a load balancer pointing
    // elsewhere): other nodes, none of our pods, every write a 404.
    "other_cluster",
];

/// Probabilities per opportunity (a matching call, or a harness step).
#[derive(Clone, Debug)]
pub struct Rates {
    pub crash: f64,
    pub pause: f64,
    pub steal: f64,
    pub lost_response: f64,
    pub burst: f64,
    pub capacity: f64,
    pub invisible: f64,
    pub eviction_500: f64,
    pub flap_per_step: f64,
    pub external_terminate_per_step: f64,
    /// A call that takes 5–30 s (a slow API): time passes mid-operation,
    /// so leases need renewing and deadlines come due.
    pub slow_call: f64,
    pub rejected: f64,
    pub conflict: f64,
    pub suspend: f64,
    pub stale: f64,
    pub blind: f64,
    pub unlabel: f64,
    pub scrape_gap: f64,
    pub other_cluster: f64,
}

impl Rates {
    pub fn draw(rng: &mut Rng) -> Rates {
        // Each run leans on some faults more than others.
        let mut r = |hi: f64| rng.range(0.0, hi);
        Rates {
            crash: r(0.25),
            pause: r(0.08),
            steal: r(0.04),
            lost_response: r(0.15),
            burst: r(0.05),
            capacity: r(0.3),
            invisible: r(0.4),
            eviction_500: r(0.08),
            flap_per_step: r(0.004),
            external_terminate_per_step: r(0.002),
            slow_call: r(0.03),
            rejected: r(0.03),
            conflict: r(0.08),
            suspend: r(0.04),
            stale: r(0.15),
            blind: r(0.1),
            unlabel: r(0.15),
            // Drawn from its own stream by `FaultPlan::new`.
            scrape_gap: 0.0,
            other_cluster: 0.0,
        }
    }
}

pub struct FaultPlan {
    pub rng: Rng,
    pub rates: Rates,
    /// Faults are injected only while this is true.
    pub active: bool,
    /// Remaining calls in the current throttling / 5xx burst, per service.
    pub store_burst: Option<(&'static str, u32)>,
    pub ec2_burst: Option<(&'static str, u32)>,
    /// The worker whose CPU series is missing, and until when.
    pub scrape_gap: Option<(String, Timestamp)>,
    /// The scrape gaps' own draws: a fault kind added later must not shift
    /// every other draw of the seed (the negative controls' seeds were
    /// chosen on that sequence).
    pub scrape_rng: Rng,
    /// Until when the API server answers for another cluster.
    pub other_cluster_until: Option<Timestamp>,
    /// Its own stream too, for the same reason.
    pub other_rng: Rng,
    /// A node list came back wrong (empty, or a label missing) since the
    /// harness last looked: a sanity hold in that tick was the fault's.
    pub view_faulted: bool,
    pub injected: BTreeMap<&'static str, u64>,
}

impl FaultPlan {
    pub fn new(mut rng: Rng) -> FaultPlan {
        let mut scrape_rng = rng.clone().fork(0x005c_4a9e);
        let mut rates = Rates::draw(&mut rng);
        // Per metrics call, about two a tick: at most one gap in about ten
        // minutes, so a scale-down's idle window can still be seen whole.
        rates.scrape_gap = scrape_rng.range(0.0, 0.01);
        let mut other_rng = rng.clone().fork(0x00c1_a57e);
        // Per node listing (a few a tick): a spell every few hours.
        rates.other_cluster = other_rng.range(0.0, 0.0015);
        FaultPlan {
            rng,
            rates,
            active: true,
            store_burst: None,
            ec2_burst: None,
            scrape_gap: None,
            scrape_rng,
            other_cluster_until: None,
            other_rng,
            view_faulted: false,
            injected: BTreeMap::new(),
        }
    }

    /// Whether to inject `kind` now, with probability `p`; counted if so.
    pub fn roll(&mut self, kind: &'static str, p: f64) -> bool {
        if self.active && self.rng.chance(p) {
            *self.injected.entry(kind).or_default() += 1;
            true
        } else {
            false
        }
    }

    pub fn count(&mut self, kind: &'static str) {
        *self.injected.entry(kind).or_default() += 1;
    }
}
