//! `/metrics` in the node-exporter and kube-state-metrics formats, so a real
//! Prometheus scrapes the simulated cluster.

use crate::sim::World;
use std::fmt::Write;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(world: &World) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode."
    );
    let _ = writeln!(out, "# TYPE node_cpu_seconds_total counter");
    for (node, (idle, busy)) in &world.cpu_seconds {
        if !world.fleet.nodes.get(node).is_some_and(|n| n.ready) {
            continue; // a dead node's exporter is not scraped
        }
        for cpu in 0..2 {
            let n = escape(node);
            let _ = writeln!(
                out,
                "node_cpu_seconds_total{{node=\"{n}\",k3s_role=\"worker\",cpu=\"{cpu}\",mode=\"idle\"}} {:.3}",
                idle / 2.0
            );
            let _ = writeln!(
                out,
                "node_cpu_seconds_total{{node=\"{n}\",k3s_role=\"worker\",cpu=\"{cpu}\",mode=\"user\"}} {:.3}",
                busy / 2.0
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP kube_pod_status_unschedulable Describes the unschedulable status for the pod."
    );
    let _ = writeln!(out, "# TYPE kube_pod_status_unschedulable gauge");
    for pod in world.pods().iter().filter(|p| p.is_unschedulable()) {
        let _ = writeln!(
            out,
            "kube_pod_status_unschedulable{{namespace=\"{}\",pod=\"{}\",uid=\"{}\"}} 1",
            escape(&pod.namespace),
            escape(&pod.name),
            escape(&pod.uid)
        );
    }
    let _ = writeln!(
        out,
        "# HELP kube_node_status_condition The condition of a cluster node."
    );
    let _ = writeln!(out, "# TYPE kube_node_status_condition gauge");
    let _ = writeln!(
        out,
        "# HELP kube_node_labels Kubernetes labels converted to Prometheus labels."
    );
    let _ = writeln!(out, "# TYPE kube_node_labels gauge");
    for node in world.nodes() {
        let n = escape(&node.name);
        for (status, value) in [
            ("true", node.ready),
            ("false", !node.ready),
            ("unknown", false),
        ] {
            let _ = writeln!(
                out,
                "kube_node_status_condition{{node=\"{n}\",condition=\"Ready\",status=\"{status}\"}} {}",
                u8::from(value)
            );
        }
        let _ = writeln!(
            out,
            "kube_node_labels{{node=\"{n}\",label_k3s_autoscaler_role=\"worker\"}} 1"
        );
    }
    out
}
