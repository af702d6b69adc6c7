//! A [`Report`] as readable text (grouped by operation), as a Markdown changelog or
//! as JSON for machines.

use serde_json::{json, Value};

use super::{Change, ChangeKind, Impact, Report};

/// Counts over a report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub operations_added: usize,
    pub operations_removed: usize,
    pub operations_changed: usize,
    pub changes: usize,
    pub breaking_for_clients: usize,
    pub breaking_for_servers: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for op in &self.operations {
            let kind = |k| op.changes.iter().any(|c| c.kind == k);
            if kind(ChangeKind::OperationAdded) {
                s.operations_added += 1;
            } else if kind(ChangeKind::OperationRemoved) {
                s.operations_removed += 1;
            } else {
                s.operations_changed += 1;
            }
        }
        for (_, c) in self.changes() {
            s.changes += 1;
            s.breaking_for_clients += usize::from(c.clients == Impact::Breaking);
            s.breaking_for_servers += usize::from(c.servers == Impact::Breaking);
        }
        s
    }

    /// Grouped by operation, one change per line with its verdict and reason below.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for op in &self.operations {
            out.push_str(&format!("{} ({})\n", op.key(), op.operation_id));
            for c in &op.changes {
                out.push_str(&format!("  {}: {}\n", c.at, c.detail));
                out.push_str(&format!("      {}: {}\n", verdict(c), c.reason));
            }
            out.push('\n');
        }
        out.push_str(&self.summary().sentence());
        out.push('\n');
        out
    }

    /// A changelog section: one table per operation.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("**{}**\n", self.summary().sentence());
        for op in &self.operations {
            out.push_str(&format!(
                "\n### `{}` (`{}`)\n\n| Where | Change | Clients | Servers | Why |\n|---|---|---|---|---|\n",
                op.key(),
                op.operation_id
            ));
            for c in &op.changes {
                let cell = |s: &str| s.replace('|', "\\|");
                let impact = |i| match i {
                    Impact::Breaking => "**breaking**",
                    Impact::Compatible => "compatible",
                };
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} | {} |\n",
                    cell(&c.at),
                    cell(&c.detail),
                    impact(c.clients),
                    impact(c.servers),
                    cell(&c.reason)
                ));
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let s = self.summary();
        let impact = |i| match i {
            Impact::Breaking => "breaking",
            Impact::Compatible => "compatible",
        };
        let operations: Vec<Value> = self
            .operations
            .iter()
            .map(|op| {
                let changes: Vec<Value> = op
                    .changes
                    .iter()
                    .map(|c| {
                        json!({
                            "kind": c.kind.as_str(),
                            "at": c.at,
                            "detail": c.detail,
                            "clients": impact(c.clients),
                            "servers": impact(c.servers),
                            "reason": c.reason,
                        })
                    })
                    .collect();
                json!({
                    "method": op.method,
                    "path": op.path,
                    "operation_id": op.operation_id,
                    "changes": changes,
                })
            })
            .collect();
        json!({
            "summary": {
                "operations_added": s.operations_added,
                "operations_removed": s.operations_removed,
                "operations_changed": s.operations_changed,
                "changes": s.changes,
                "breaking_for_clients": s.breaking_for_clients,
                "breaking_for_servers": s.breaking_for_servers,
            },
            "operations": operations,
        })
    }
}

impl Summary {
    /// `3 operations affected (2 changed, 1 added): 5 changes, 3 breaking for
    /// clients, 1 breaking for servers.`
    pub fn sentence(&self) -> String {
        if self.changes == 0 {
            return "No API changes.".into();
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let parts: Vec<String> = [
            (self.operations_changed, "changed"),
            (self.operations_added, "added"),
            (self.operations_removed, "removed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let operations = self.operations_changed + self.operations_added + self.operations_removed;
        format!(
            "{} affected ({}): {}, {} breaking for clients, {} breaking for servers.",
            plural(operations, "operation"),
            parts.join(", "),
            plural(self.changes, "change"),
            self.breaking_for_clients,
            self.breaking_for_servers
        )
    }
}

fn verdict(c: &Change) -> &'static str {
    match (c.clients, c.servers) {
        (Impact::Breaking, Impact::Breaking) => "breaking for clients and servers",
        (Impact::Breaking, Impact::Compatible) => "breaking for clients",
        (Impact::Compatible, Impact::Breaking) => "breaking for servers",
        (Impact::Compatible, Impact::Compatible) => "compatible",
    }
}
