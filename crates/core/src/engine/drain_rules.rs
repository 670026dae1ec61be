//! Which pods a drain evicts, ignores, or refuses to touch (docs/architecture.md §2,
//! "Pods that block a scale-down": kubectl drain's filters and the Cluster
//! Autoscaler's rules).

use super::settings::DrainRules;
use crate::ports::cluster::{ANNOTATION_DO_NOT_DISRUPT, ANNOTATION_SAFE_TO_EVICT};
use crate::ports::{Pdb, Pod};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Left alone and not blocking (DaemonSet, mirror, finished, already terminating).
    Ignore(&'static str),
    /// Evicted through the Eviction API.
    Evict,
    /// Makes the node no candidate; the text names the pod and the rule.
    Block(String),
}

const CRITICAL_PRIORITY_CLASSES: [&str; 2] = ["system-cluster-critical", "system-node-critical"];

pub fn classify(pod: &Pod, pdbs: &[Pdb], rules: &DrainRules) -> Disposition {
    if pod.is_finished() {
        return Disposition::Ignore("finished");
    }
    if pod.is_mirror() {
        return Disposition::Ignore("mirror pod");
    }
    if pod.owner_kind.as_deref() == Some("DaemonSet") {
        return Disposition::Ignore("DaemonSet");
    }
    if pod.terminating {
        return Disposition::Ignore("terminating");
    }
    // Called for every pod of every node when a scale-down candidate is
    // sought: the pod's key is only formatted when it is about to be named.
    let key = || pod.key();
    let annotation_is = |name: &str, value: &str| {
        pod.annotation(name)
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    };
    if annotation_is(ANNOTATION_SAFE_TO_EVICT, "false") {
        return Disposition::Block(format!(
            "pod {} has annotation {ANNOTATION_SAFE_TO_EVICT}=\"false\"",
            key()
        ));
    }
    if annotation_is(ANNOTATION_DO_NOT_DISRUPT, "true") {
        return Disposition::Block(format!(
            "pod {} has annotation {ANNOTATION_DO_NOT_DISRUPT}=\"true\"",
            key()
        ));
    }
    if let Some(class) = pod
        .priority_class
        .as_deref()
        .filter(|c| CRITICAL_PRIORITY_CLASSES.contains(c))
    {
        return Disposition::Block(format!("pod {} has priority class {class}", key()));
    }
    // Cluster Autoscaler's explicit opt-in overrides the remaining rules,
    // which are about pods that *might* not survive eviction.
    if annotation_is(ANNOTATION_SAFE_TO_EVICT, "true") {
        return Disposition::Evict;
    }
    match pod.owner_kind.as_deref() {
        None => {
            return Disposition::Block(format!(
                "pod {} has no controller owner (it would not be recreated)",
                key()
            ));
        }
        Some("StatefulSet") if !rules.evict_statefulsets => {
            return Disposition::Block(format!(
                "pod {} is owned by a StatefulSet (drain.evict_statefulsets = false)",
                key()
            ));
        }
        _ => {}
    }
    if !rules.delete_emptydir_data && pod.volumes.iter().any(|v| v.is_local()) {
        return Disposition::Block(format!(
            "pod {} uses emptyDir/hostPath storage (drain.delete_emptydir_data = false)",
            key()
        ));
    }
    // A budget the Eviction API would skip (an empty selector) leaves the
    // pod as unguarded as no budget at all.
    if pod.namespace == "kube-system" && !pdbs.iter().any(|pdb| pdb.guards(pod)) {
        return Disposition::Block(format!(
            "pod {} is in kube-system without a PodDisruptionBudget",
            key()
        ));
    }
    Disposition::Evict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::cluster::{LabelSelector, VolumeKind};
    use crate::ports::{PodFields, PodPhase, Resources};
    use std::collections::BTreeMap;

    fn rules() -> DrainRules {
        DrainRules {
            timeout: std::time::Duration::from_secs(300),
            evict_statefulsets: false,
            delete_emptydir_data: false,
        }
    }

    fn pod(owner: Option<&str>) -> Pod {
        PodFields {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            node_name: Some("n".into()),
            phase: PodPhase::Running,
            owner_kind: owner.map(String::from),
            labels: [("app".into(), "x".into())].into(),
            annotations: Default::default(),
            priority_class: None,
            volumes: vec![],
            requests: Resources::default(),
            unschedulable_since: None,
            terminating: false,
            node_selector: Default::default(),
            scheduling_gates: Vec::new(),
        }
        .into()
    }

    fn blocked(d: Disposition) -> String {
        match d {
            Disposition::Block(why) => why,
            other => panic!("expected Block, got {other:?}"),
        }
    }

    #[test]
    fn table_of_design_section_3() {
        let r = rules();
        assert_eq!(
            classify(&pod(Some("ReplicaSet")), &[], &r),
            Disposition::Evict
        );
        assert_eq!(
            classify(&pod(Some("DaemonSet")), &[], &r),
            Disposition::Ignore("DaemonSet")
        );
        let mut mirror = pod(Some("Node"));
        mirror
            .annotations
            .insert("kubernetes.io/config.mirror".into(), "x".into());
        assert_eq!(
            classify(&mirror, &[], &r),
            Disposition::Ignore("mirror pod")
        );
        let mut done = pod(None);
        done.phase = PodPhase::Succeeded;
        assert_eq!(classify(&done, &[], &r), Disposition::Ignore("finished"));

        assert!(blocked(classify(&pod(Some("StatefulSet")), &[], &r)).contains("StatefulSet"));
        assert!(blocked(classify(&pod(None), &[], &r)).contains("no controller owner"));

        let mut local = pod(Some("ReplicaSet"));
        local.volumes = vec![VolumeKind::EmptyDir];
        assert!(blocked(classify(&local, &[], &r)).contains("emptyDir"));

        let mut system = pod(Some("ReplicaSet"));
        system.namespace = "kube-system".into();
        assert!(blocked(classify(&system, &[], &r)).contains("kube-system"));
        let pdb = Pdb {
            namespace: "kube-system".into(),
            name: "x".into(),
            selector: LabelSelector {
                match_labels: BTreeMap::from([("app".into(), "x".into())]),
                match_expressions: vec![],
            },
            disruptions_allowed: 1,
        };
        // A budget with an empty selector is skipped by the Eviction API:
        // the pod is as unguarded as with none.
        let everything = Pdb {
            name: "everything".into(),
            selector: LabelSelector::default(),
            ..pdb.clone()
        };
        assert!(
            blocked(classify(&system, std::slice::from_ref(&everything), &r))
                .contains("kube-system")
        );
        assert_eq!(classify(&system, &[pdb], &r), Disposition::Evict);

        let mut annotated = pod(Some("ReplicaSet"));
        annotated
            .annotations
            .insert(ANNOTATION_SAFE_TO_EVICT.into(), "false".into());
        assert!(blocked(classify(&annotated, &[], &r)).contains("safe-to-evict"));
        let mut karpenter = pod(Some("ReplicaSet"));
        karpenter
            .annotations
            .insert(ANNOTATION_DO_NOT_DISRUPT.into(), "true".into());
        assert!(blocked(classify(&karpenter, &[], &r)).contains("do-not-disrupt"));
        let mut critical = pod(Some("ReplicaSet"));
        critical.priority_class = Some("system-node-critical".into());
        assert!(blocked(classify(&critical, &[], &r)).contains("system-node-critical"));
    }

    #[test]
    fn config_switches_relax_the_rules() {
        let relaxed = DrainRules {
            evict_statefulsets: true,
            delete_emptydir_data: true,
            ..rules()
        };
        assert_eq!(
            classify(&pod(Some("StatefulSet")), &[], &relaxed),
            Disposition::Evict
        );
        let mut local = pod(Some("ReplicaSet"));
        local.volumes = vec![VolumeKind::HostPath];
        assert_eq!(classify(&local, &[], &relaxed), Disposition::Evict);
        let mut opted_in = pod(None);
        opted_in
            .annotations
            .insert(ANNOTATION_SAFE_TO_EVICT.into(), "true".into());
        assert_eq!(classify(&opted_in, &[], &rules()), Disposition::Evict);
    }
}
