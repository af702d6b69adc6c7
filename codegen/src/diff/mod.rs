//! Semantic API diff: what changed between two specs, in API terms, and whom it
//! breaks.
//!
//! Both sides are lowered to the [IR](crate::ir) by the generator's own loader, so
//! descriptions, examples, file placement and `$ref` structure are already gone:
//! operations are matched by method and full path, schemas are compared by shape.
//! `walk.rs` finds the changes, `render.rs` prints them as text, Markdown or JSON.

mod render;
mod walk;

use std::collections::BTreeMap;

use crate::ir::{Api, Operation};

/// Every change between two APIs, grouped by operation, sorted by path then method.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub operations: Vec<OperationDiff>,
}

#[derive(Debug, PartialEq)]
pub struct OperationDiff {
    pub method: String,
    /// The full path (base path included), as the newer spec spells it.
    pub path: String,
    pub operation_id: String,
    pub changes: Vec<Change>,
}

/// One change to one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Where in the operation: `operation`, `security`, `query.kind`, `path.userId`,
    /// `request`, `request.auth.session`, `response 200.submit_url`,
    /// `response 429 header.Retry-After`, with `[]` for array items and `.*` for
    /// map values.
    pub at: String,
    /// What happened, e.g. `added (optional string)`.
    pub detail: String,
    pub clients: Impact,
    pub servers: Impact,
    /// Why it is (or is not) breaking, for the side(s) it breaks.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impact {
    Compatible,
    Breaking,
}

/// The kinds of change, named as in `--json` output and in drift allow-lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    OperationAdded,
    OperationRemoved,
    Deprecated,
    Undeprecated,
    SchemeAdded,
    SchemeRemoved,
    AuthOptional,
    AuthRequired,
    Added,
    Removed,
    NowRequired,
    NowOptional,
    NowNullable,
    NowNonNullable,
    TypeChanged,
    EnumValueAdded,
    EnumValueRemoved,
    VariantAdded,
    VariantRemoved,
    DefaultChanged,
    ConstraintChanged,
    StatusAdded,
    StatusRemoved,
}

impl ChangeKind {
    pub const ALL: &'static [ChangeKind] = &[
        ChangeKind::OperationAdded,
        ChangeKind::OperationRemoved,
        ChangeKind::Deprecated,
        ChangeKind::Undeprecated,
        ChangeKind::SchemeAdded,
        ChangeKind::SchemeRemoved,
        ChangeKind::AuthOptional,
        ChangeKind::AuthRequired,
        ChangeKind::Added,
        ChangeKind::Removed,
        ChangeKind::NowRequired,
        ChangeKind::NowOptional,
        ChangeKind::NowNullable,
        ChangeKind::NowNonNullable,
        ChangeKind::TypeChanged,
        ChangeKind::EnumValueAdded,
        ChangeKind::EnumValueRemoved,
        ChangeKind::VariantAdded,
        ChangeKind::VariantRemoved,
        ChangeKind::DefaultChanged,
        ChangeKind::ConstraintChanged,
        ChangeKind::StatusAdded,
        ChangeKind::StatusRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::OperationAdded => "operation-added",
            ChangeKind::OperationRemoved => "operation-removed",
            ChangeKind::Deprecated => "deprecated",
            ChangeKind::Undeprecated => "undeprecated",
            ChangeKind::SchemeAdded => "security-scheme-added",
            ChangeKind::SchemeRemoved => "security-scheme-removed",
            ChangeKind::AuthOptional => "auth-became-optional",
            ChangeKind::AuthRequired => "auth-became-required",
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::NowRequired => "became-required",
            ChangeKind::NowOptional => "became-optional",
            ChangeKind::NowNullable => "became-nullable",
            ChangeKind::NowNonNullable => "became-non-nullable",
            ChangeKind::TypeChanged => "type-changed",
            ChangeKind::EnumValueAdded => "enum-value-added",
            ChangeKind::EnumValueRemoved => "enum-value-removed",
            ChangeKind::VariantAdded => "variant-added",
            ChangeKind::VariantRemoved => "variant-removed",
            ChangeKind::DefaultChanged => "default-changed",
            ChangeKind::ConstraintChanged => "constraint-changed",
            ChangeKind::StatusAdded => "status-added",
            ChangeKind::StatusRemoved => "status-removed",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl Change {
    pub fn breaking(&self) -> bool {
        self.clients == Impact::Breaking || self.servers == Impact::Breaking
    }
}

impl OperationDiff {
    /// `POST /_matrix/client/v3/register`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    pub fn changes(&self) -> impl Iterator<Item = (&OperationDiff, &Change)> {
        self.operations
            .iter()
            .flat_map(|op| op.changes.iter().map(move |c| (op, c)))
    }

    /// Keeps only the changes `keep` accepts (given the operation's [`key`] and the
    /// change), dropping operations left without any.
    ///
    /// [`key`]: OperationDiff::key
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Change) -> bool) {
        for op in &mut self.operations {
            let key = op.key();
            op.changes.retain(|c| keep(&key, c));
        }
        self.operations.retain(|op| !op.changes.is_empty());
    }
}

/// Which operations to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every operation of either side.
    All,
    /// Only the operations the newer side has: for checking a partial
    /// description (`api/`) against a whole release.
    NewOperations,
}

/// Compares `old` with `new`.
pub fn diff(old: &Api, new: &Api, scope: Scope) -> Report {
    let old_ops = operations(old);
    let new_ops = operations(new);
    let mut report = Report::default();
    for (key, (o_full, o)) in &old_ops {
        if new_ops.contains_key(key) {
            continue;
        }
        if scope == Scope::All {
            report.operations.push(walk::operation_removed(o_full, o));
        }
    }
    for (key, (n_full, n)) in &new_ops {
        let diff = match old_ops.get(key) {
            Some((o_full, o)) => walk::operation(old, new, (o_full, o), (n_full, n)),
            None => walk::operation_added(n_full, n),
        };
        if !diff.changes.is_empty() {
            report.operations.push(diff);
        }
    }
    report
        .operations
        .sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    report
}

/// Operations by `(method, path with parameter names blanked)`: a renamed path
/// parameter is the same endpoint on the wire. Values: the full path and the
/// operation.
fn operations(api: &Api) -> BTreeMap<(String, String), (String, &Operation)> {
    let mut out = BTreeMap::new();
    for file in &api.files {
        for op in &file.operations {
            let full = format!("{}{}", file.base_path, op.path);
            let blanked: Vec<&str> = full
                .split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect();
            out.insert((op.method.clone(), blanked.join("/")), (full, op));
        }
    }
    out
}
