//! Finding the changes between two matched operations and classifying each one.
//!
//! Classification follows the data: a request value is produced by clients and
//! consumed by servers, a response value the other way round. A change that old
//! producers may violate (a field became required) breaks producers; one old
//! consumers may not handle (a field may now be absent, an enum gained a value)
//! breaks consumers. Operations and security are classified directly.

use serde_json::Value;

use super::{Change, ChangeKind, Impact, OperationDiff};
use crate::ir::{
    Api, Body, Content, Doc, Field, Header, Operation, Param, ParamIn, Response, SchemeKind,
    Security, Status, Ty, TypeId, TypeKind,
};

#[derive(Clone, Copy, PartialEq)]
enum Flow {
    Request,
    Response,
}

/// Who a change breaks, in terms of the data flow it happens in.
#[derive(Clone, Copy)]
enum Breaks {
    Nobody,
    Producers,
    Consumers,
    Both,
}

use Breaks::{Both, Consumers, Nobody, Producers};

struct Walker<'a> {
    old: &'a Api,
    new: &'a Api,
    changes: Vec<Change>,
    /// Type pairs under comparison: a recursive schema is walked once.
    visiting: Vec<(TypeId, TypeId)>,
}

pub(super) fn operation_added(full_path: &str, op: &Operation) -> OperationDiff {
    let change = Change {
        kind: ChangeKind::OperationAdded,
        at: "operation".into(),
        detail: "operation added".into(),
        clients: Impact::Compatible,
        servers: Impact::Breaking,
        reason: "servers must implement it".into(),
    };
    diff_of(full_path, op, vec![change])
}

pub(super) fn operation_removed(full_path: &str, op: &Operation) -> OperationDiff {
    let change = Change {
        kind: ChangeKind::OperationRemoved,
        at: "operation".into(),
        detail: "operation removed".into(),
        clients: Impact::Breaking,
        servers: Impact::Compatible,
        reason: "clients calling it get an error from servers that drop it".into(),
    };
    diff_of(full_path, op, vec![change])
}

fn diff_of(full_path: &str, op: &Operation, changes: Vec<Change>) -> OperationDiff {
    OperationDiff {
        method: op.method.clone(),
        path: full_path.to_string(),
        operation_id: op.operation_id.clone(),
        changes,
    }
}

/// The changes from `o` (in `old`) to `n` (in `new`): one operation on both sides,
/// each with its full path.
pub(super) fn operation(
    old: &Api,
    new: &Api,
    (o_path, o): (&str, &Operation),
    (n_path, n): (&str, &Operation),
) -> OperationDiff {
    let mut w = Walker {
        old,
        new,
        changes: Vec::new(),
        visiting: Vec::new(),
    };
    w.deprecation("operation", &o.doc, &n.doc);
    w.security(&o.security, &n.security);
    w.params((o_path, o), (n_path, n));
    w.body(o.body.as_ref(), n.body.as_ref());
    w.responses(&o.responses, &n.responses);
    diff_of(n_path, n, w.changes)
}

impl Walker<'_> {
    fn push(
        &mut self,
        flow: Flow,
        kind: ChangeKind,
        at: &str,
        detail: String,
        breaks: Breaks,
        reason: &str,
    ) {
        let (producers, consumers) = match flow {
            Flow::Request => ("clients", "servers"),
            Flow::Response => ("servers", "clients"),
        };
        let (p, c) = match breaks {
            Nobody => (false, false),
            Producers => (true, false),
            Consumers => (false, true),
            Both => (true, true),
        };
        let (clients, servers) = match flow {
            Flow::Request => (p, c),
            Flow::Response => (c, p),
        };
        let impact = |b| {
            if b {
                Impact::Breaking
            } else {
                Impact::Compatible
            }
        };
        self.changes.push(Change {
            kind,
            at: at.to_string(),
            detail,
            clients: impact(clients),
            servers: impact(servers),
            reason: reason.replace("{P}", producers).replace("{C}", consumers),
        });
    }

    fn deprecation(&mut self, at: &str, o: &Doc, n: &Doc) {
        let (kind, detail, reason) = match (o.deprecated, n.deprecated) {
            (false, true) => (
                ChangeKind::Deprecated,
                "deprecated",
                "still part of the API, but due to be removed: move off it",
            ),
            (true, false) => (
                ChangeKind::Undeprecated,
                "no longer deprecated",
                "it stays part of the API",
            ),
            _ => return,
        };
        // Deprecation changes nothing on the wire, whichever way the data flows.
        self.push(Flow::Request, kind, at, detail.into(), Nobody, reason);
    }

    fn security(&mut self, o: &Security, n: &Security) {
        for s in &n.schemes {
            if !o.schemes.iter().any(|x| x.kind == s.kind) {
                self.changes.push(Change {
                    kind: ChangeKind::SchemeAdded,
                    at: "security".into(),
                    detail: format!("accepts credentials in the {}", scheme(&s.kind)),
                    clients: Impact::Compatible,
                    servers: Impact::Breaking,
                    reason: "servers must accept credentials sent this way".into(),
                });
            }
        }
        for s in &o.schemes {
            if !n.schemes.iter().any(|x| x.kind == s.kind) {
                self.changes.push(Change {
                    kind: ChangeKind::SchemeRemoved,
                    at: "security".into(),
                    detail: format!("no longer accepts credentials in the {}", scheme(&s.kind)),
                    clients: Impact::Breaking,
                    servers: Impact::Compatible,
                    reason: "clients sending credentials this way are refused".into(),
                });
            }
        }
        let anonymous = |s: &Security| s.optional || s.schemes.is_empty();
        let change = match (anonymous(o), anonymous(n)) {
            (false, true) => Change {
                kind: ChangeKind::AuthOptional,
                at: "security".into(),
                detail: "authentication became optional".into(),
                clients: Impact::Compatible,
                servers: Impact::Breaking,
                reason: "servers must also serve callers without credentials".into(),
            },
            (true, false) => Change {
                kind: ChangeKind::AuthRequired,
                at: "security".into(),
                detail: "authentication became required".into(),
                clients: Impact::Breaking,
                servers: Impact::Compatible,
                reason: "callers without credentials are refused".into(),
            },
            _ => return,
        };
        self.changes.push(change);
    }

    /// Path parameters are matched by position (their names are not on the wire),
    /// the others by location and name.
    fn params(&mut self, (o_path, o): (&str, &Operation), (n_path, n): (&str, &Operation)) {
        let key = |path: &str, p: &Param| match p.location {
            ParamIn::Path => {
                let template = format!("{{{}}}", p.wire);
                let index = path.split('/').position(|s| s == template);
                format!("path #{}", index.unwrap_or(usize::MAX))
            }
            ParamIn::Query => format!("query {}", p.wire),
            ParamIn::Header => format!("header {}", p.wire.to_ascii_lowercase()),
        };
        let at = |p: &Param| {
            let area = match p.location {
                ParamIn::Path => "path",
                ParamIn::Query => "query",
                ParamIn::Header => "header",
            };
            format!("{area}.{}", p.wire)
        };
        for op in &o.params {
            if !n.params.iter().any(|np| key(n_path, np) == key(o_path, op)) {
                self.removed(Flow::Request, &at(op), op.required);
            }
        }
        for np in &n.params {
            match o
                .params
                .iter()
                .find(|op| key(o_path, op) == key(n_path, np))
            {
                Some(op) => self.member(
                    Flow::Request,
                    &at(np),
                    Member::of_param(op),
                    Member::of_param(np),
                ),
                None => self.added(Flow::Request, &at(np), np.required, Some(&np.ty)),
            }
        }
    }

    fn body(&mut self, o: Option<&Body>, n: Option<&Body>) {
        match (o, n) {
            (None, None) => {}
            (Some(o), None) => self.removed(Flow::Request, "request", o.required),
            (None, Some(n)) => {
                self.added(Flow::Request, "request", n.required, n.content.schema());
            }
            (Some(o), Some(n)) => {
                self.presence(Flow::Request, "request", o.required, n.required);
                self.content(Flow::Request, "request", &o.content, &n.content);
            }
        }
    }

    /// Responses by status, in status order.
    fn responses(&mut self, o: &[Response], n: &[Response]) {
        let mut statuses: Vec<Status> = o.iter().chain(n).map(|r| r.status).collect();
        statuses.sort();
        statuses.dedup();
        for code in statuses {
            let at = format!("response {}", status(code));
            let success = match code {
                Status::Code(c) => c < 400,
                Status::Class(c) => c < 4,
            };
            let error_reason =
                "an error status: clients handle errors they do not know by their `errcode`";
            let (or, nr) = match (
                o.iter().find(|r| r.status == code),
                n.iter().find(|r| r.status == code),
            ) {
                (Some(or), Some(nr)) => (or, nr),
                (Some(_), None) => {
                    let (servers, reason) = if success {
                        (
                            Impact::Breaking,
                            "existing servers may still answer with it",
                        )
                    } else {
                        (Impact::Compatible, error_reason)
                    };
                    self.changes.push(Change {
                        kind: ChangeKind::StatusRemoved,
                        at,
                        detail: "status removed".into(),
                        clients: Impact::Compatible,
                        servers,
                        reason: reason.into(),
                    });
                    continue;
                }
                (None, Some(_)) => {
                    let (clients, reason) = if success {
                        (
                            Impact::Breaking,
                            "existing clients do not expect this success status",
                        )
                    } else {
                        (Impact::Compatible, error_reason)
                    };
                    self.changes.push(Change {
                        kind: ChangeKind::StatusAdded,
                        at,
                        detail: "status added".into(),
                        clients,
                        servers: Impact::Compatible,
                        reason: reason.into(),
                    });
                    continue;
                }
                (None, None) => continue,
            };
            self.deprecation(&at, &or.doc, &nr.doc);
            match (&or.content, &nr.content) {
                (None, None) => {}
                (Some(_), None) => self.removed(Flow::Response, &at, true),
                (None, Some(nc)) => self.added(Flow::Response, &at, true, nc.schema()),
                (Some(oc), Some(nc)) => self.content(Flow::Response, &at, oc, nc),
            }
            self.headers(&at, &or.headers, &nr.headers);
        }
    }

    fn headers(&mut self, at: &str, o: &[Header], n: &[Header]) {
        let same = |a: &Header, b: &Header| a.wire.eq_ignore_ascii_case(&b.wire);
        for oh in o {
            if !n.iter().any(|nh| same(oh, nh)) {
                let at = format!("{at} header.{}", oh.wire);
                self.removed(Flow::Response, &at, oh.required);
            }
        }
        for nh in n {
            let at = format!("{at} header.{}", nh.wire);
            match o.iter().find(|oh| same(oh, nh)) {
                Some(oh) => self.presence(Flow::Response, &at, oh.required, nh.required),
                None => self.added(Flow::Response, &at, nh.required, None),
            }
        }
    }

    fn content(&mut self, flow: Flow, at: &str, o: &Content, n: &Content) {
        match (o, n) {
            (Content::Json(a), Content::Json(b)) | (Content::Form(a), Content::Form(b)) => {
                self.ty(flow, at, a, b)
            }
            (Content::Binary, Content::Binary) | (Content::Html, Content::Html) => {}
            _ => {
                self.push(
                    flow,
                    ChangeKind::TypeChanged,
                    at,
                    format!("body changed from {} to {}", o.kind_name(), n.kind_name()),
                    Both,
                    "the two sides no longer agree on the body's format",
                );
            }
        }
    }

    fn added(&mut self, flow: Flow, at: &str, required: bool, ty: Option<&Ty>) {
        let what = ty.map_or("value".to_string(), |t| describe(self.new, t));
        if required {
            self.push(
                flow,
                ChangeKind::Added,
                at,
                format!("added (required {what})"),
                Producers,
                "existing {P} do not send it",
            );
        } else {
            self.push(
                flow,
                ChangeKind::Added,
                at,
                format!("added (optional {what})"),
                Nobody,
                "optional: existing {P} may omit it and existing {C} ignore it",
            );
        }
    }

    fn removed(&mut self, flow: Flow, at: &str, was_required: bool) {
        if was_required {
            self.push(
                flow,
                ChangeKind::Removed,
                at,
                "removed (was required)".into(),
                Consumers,
                "existing {C} expect it",
            );
        } else {
            self.push(
                flow,
                ChangeKind::Removed,
                at,
                "removed (was optional)".into(),
                Nobody,
                "it was optional, so {C} already cope without it",
            );
        }
    }

    fn presence(&mut self, flow: Flow, at: &str, o: bool, n: bool) {
        match (o, n) {
            (false, true) => self.push(
                flow,
                ChangeKind::NowRequired,
                at,
                "became required".into(),
                Producers,
                "existing {P} may omit it",
            ),
            (true, false) => self.push(
                flow,
                ChangeKind::NowOptional,
                at,
                "became optional".into(),
                Consumers,
                "existing {C} expect it to be present",
            ),
            _ => {}
        }
    }

    /// A field or parameter present on both sides.
    fn member(&mut self, flow: Flow, at: &str, o: Member, n: Member) {
        self.presence(flow, at, o.required, n.required);
        self.default(flow, at, o.default, n.default);
        self.deprecation(at, o.doc, n.doc);
        self.format(flow, at, &o.doc.format, &n.doc.format);
        self.pattern(flow, at, &o.doc.pattern, &n.doc.pattern);
        self.ty(flow, at, o.ty, n.ty);
    }

    fn default(&mut self, flow: Flow, at: &str, o: Option<&Value>, n: Option<&Value>) {
        self.setting(
            flow,
            at,
            (ChangeKind::DefaultChanged, "default"),
            (o.map(Value::to_string), n.map(Value::to_string)),
            [
                (
                    Consumers,
                    "existing {C} do not apply it to an omitted value",
                ),
                (
                    Producers,
                    "existing {P} omit the value expecting the default",
                ),
                (Both, "an omitted value now means something else"),
            ],
        );
    }

    fn format(&mut self, flow: Flow, at: &str, o: &Option<String>, n: &Option<String>) {
        // In JSON Schema 2020-12 `format` is an annotation, not an assertion: it
        // names what the value is (`mx-user-id`) without making others invalid.
        let reason = "`format` is an annotation: it documents the value without restricting it";
        self.setting(
            flow,
            at,
            (ChangeKind::ConstraintChanged, "format"),
            (o.clone(), n.clone()),
            [(Nobody, reason), (Nobody, reason), (Nobody, reason)],
        );
    }

    fn pattern(&mut self, flow: Flow, at: &str, o: &Option<String>, n: &Option<String>) {
        self.setting(
            flow,
            at,
            (ChangeKind::ConstraintChanged, "pattern"),
            (o.clone(), n.clone()),
            [
                (
                    Producers,
                    "existing {P} may send values that do not match it",
                ),
                (Consumers, "existing {C} may rely on it"),
                (
                    Both,
                    "values valid under one may be invalid under the other",
                ),
            ],
        );
    }

    /// An optional setting of a field (`default`, `format`, `pattern`): `rules`
    /// says whom it breaks, and why, when it is added, removed or changed.
    fn setting(
        &mut self,
        flow: Flow,
        at: &str,
        (kind, what): (ChangeKind, &str),
        values: (Option<String>, Option<String>),
        rules: [(Breaks, &str); 3],
    ) {
        let (detail, (breaks, reason)) = match values {
            (None, Some(v)) => (format!("{what} `{v}` added"), rules[0]),
            (Some(v), None) => (format!("{what} `{v}` removed"), rules[1]),
            (Some(a), Some(b)) if a != b => {
                (format!("{what} changed from `{a}` to `{b}`"), rules[2])
            }
            _ => return,
        };
        self.push(flow, kind, at, detail, breaks, reason);
    }

    fn ty(&mut self, flow: Flow, at: &str, o: &Ty, n: &Ty) {
        match (o, n) {
            // An identifier is a string with a format; formats are compared (and
            // reported) on their own.
            (Ty::String | Ty::Id(_) | Ty::Pattern(_), Ty::String | Ty::Id(_) | Ty::Pattern(_)) => {}
            (Ty::Option(a), Ty::Option(b)) => self.ty(flow, at, a, b),
            (Ty::Option(a), b) => {
                self.push(
                    flow,
                    ChangeKind::NowNonNullable,
                    at,
                    "no longer nullable".into(),
                    Producers,
                    "existing {P} may send null",
                );
                self.ty(flow, at, a, b);
            }
            (a, Ty::Option(b)) => {
                self.push(
                    flow,
                    ChangeKind::NowNullable,
                    at,
                    "became nullable".into(),
                    Consumers,
                    "existing {C} do not expect null",
                );
                self.ty(flow, at, a, b);
            }
            (Ty::Vec(a), Ty::Vec(b)) => self.ty(flow, &format!("{at}[]"), a, b),
            (Ty::Map(a), Ty::Map(b)) => self.ty(flow, &format!("{at}.*"), a, b),
            (Ty::Named(a) | Ty::Boxed(a), Ty::Named(b) | Ty::Boxed(b)) => {
                self.typedef(flow, at, *a, *b)
            }
            // A free-form object is a struct without fields that allows any key.
            (Ty::Object, Ty::Named(b) | Ty::Boxed(b)) if is_struct(self.new, *b) => {
                if let TypeKind::Struct { fields, extra } = &self.new.types[*b].kind {
                    self.fields(flow, at, (&[], Some(&Ty::Any)), (fields, extra.as_ref()));
                }
            }
            (Ty::Named(a) | Ty::Boxed(a), Ty::Object) if is_struct(self.old, *a) => {
                if let TypeKind::Struct { fields, extra } = &self.old.types[*a].kind {
                    self.fields(flow, at, (fields, extra.as_ref()), (&[], Some(&Ty::Any)));
                }
            }
            (Ty::Any, b) if *b != Ty::Any => {
                let detail = format!("restricted from any value to {}", describe(self.new, b));
                self.push(
                    flow,
                    ChangeKind::TypeChanged,
                    at,
                    detail,
                    Producers,
                    "existing {P} may send other values",
                );
            }
            (a, Ty::Any) if *a != Ty::Any => {
                let detail = format!("widened from {} to any value", describe(self.old, a));
                self.push(
                    flow,
                    ChangeKind::TypeChanged,
                    at,
                    detail,
                    Consumers,
                    "existing {C} expect only the old type",
                );
            }
            (Ty::Integer, Ty::Number) => self.push(
                flow,
                ChangeKind::TypeChanged,
                at,
                "type changed from integer to number".into(),
                Consumers,
                "values may now have a fraction, which existing {C} do not expect",
            ),
            (Ty::Number, Ty::Integer) => self.push(
                flow,
                ChangeKind::TypeChanged,
                at,
                "type changed from number to integer".into(),
                Producers,
                "existing {P} may send a fraction",
            ),
            (Ty::Named(id), Ty::String) if is_enum(self.old, *id) => self.push(
                flow,
                ChangeKind::TypeChanged,
                at,
                "type changed from string enum to any string".into(),
                Consumers,
                "existing {C} know only the listed values",
            ),
            (Ty::String, Ty::Named(id)) if is_enum(self.new, *id) => self.push(
                flow,
                ChangeKind::TypeChanged,
                at,
                "type changed from any string to string enum".into(),
                Producers,
                "existing {P} may send values not listed",
            ),
            (a, b) if a == b => {}
            (a, b) => {
                let detail = format!(
                    "type changed from {} to {}",
                    describe(self.old, a),
                    describe(self.new, b)
                );
                self.push(
                    flow,
                    ChangeKind::TypeChanged,
                    at,
                    detail,
                    Both,
                    "values of one type are not values of the other",
                );
            }
        }
    }

    fn typedef(&mut self, flow: Flow, at: &str, a: TypeId, b: TypeId) {
        if self.visiting.contains(&(a, b)) {
            return;
        }
        self.visiting.push((a, b));
        let (old, new) = (self.old, self.new);
        match (&old.types[a].kind, &new.types[b].kind) {
            (
                TypeKind::Struct {
                    fields: of,
                    extra: oe,
                },
                TypeKind::Struct {
                    fields: nf,
                    extra: ne,
                },
            ) => {
                self.fields(flow, at, (of, oe.as_ref()), (nf, ne.as_ref()));
            }
            (TypeKind::StringEnum { values: ov }, TypeKind::StringEnum { values: nv }) => {
                for v in ov {
                    if !nv.iter().any(|n| n.wire == v.wire) {
                        self.push(
                            flow,
                            ChangeKind::EnumValueRemoved,
                            at,
                            format!("value `{}` removed", v.wire),
                            Producers,
                            "existing {P} may still send it",
                        );
                    }
                }
                for v in nv {
                    if !ov.iter().any(|o| o.wire == v.wire) {
                        self.push(
                            flow,
                            ChangeKind::EnumValueAdded,
                            at,
                            format!("value `{}` added", v.wire),
                            Consumers,
                            "existing {C} do not know it",
                        );
                    }
                }
            }
            (
                TypeKind::Tagged {
                    tag: ot,
                    variants: ov,
                },
                TypeKind::Tagged {
                    tag: nt,
                    variants: nv,
                },
            ) if ot == nt => {
                let label =
                    |w: &Option<String>| format!("{at}({ot}={})", w.as_deref().unwrap_or(""));
                for o in ov {
                    if !nv.iter().any(|n| n.wire == o.wire) {
                        self.variant_removed(flow, &label(&o.wire));
                    }
                }
                for n in nv {
                    match ov.iter().find(|o| o.wire == n.wire) {
                        Some(o) => self.ty(flow, &label(&n.wire), &o.ty, &n.ty),
                        None => self.variant_added(flow, &label(&n.wire)),
                    }
                }
            }
            (TypeKind::Untagged { variants: ov }, TypeKind::Untagged { variants: nv }) => {
                // Alternatives without a tag have no identity but their order.
                for i in 0..ov.len().max(nv.len()) {
                    let variant_at = format!("{at}(alternative {})", i + 1);
                    match (ov.get(i), nv.get(i)) {
                        (Some(o), Some(n)) => self.ty(flow, &variant_at, &o.ty, &n.ty),
                        (Some(_), None) => self.variant_removed(flow, &variant_at),
                        (None, Some(_)) => self.variant_added(flow, &variant_at),
                        (None, None) => {}
                    }
                }
            }
            _ => {
                let detail = format!(
                    "type changed from {} to {}",
                    describe(old, &Ty::Named(a)),
                    describe(new, &Ty::Named(b))
                );
                self.push(
                    flow,
                    ChangeKind::TypeChanged,
                    at,
                    detail,
                    Both,
                    "values of one type are not values of the other",
                );
            }
        }
        self.visiting.pop();
    }

    /// The fields (and extra keys) of two object types.
    fn fields(
        &mut self,
        flow: Flow,
        at: &str,
        (of, oe): (&[Field], Option<&Ty>),
        (nf, ne): (&[Field], Option<&Ty>),
    ) {
        for o in of {
            if !nf.iter().any(|n| n.wire == o.wire) {
                self.removed(flow, &format!("{at}.{}", o.wire), o.required);
            }
        }
        for n in nf {
            let field_at = format!("{at}.{}", n.wire);
            match of.iter().find(|o| o.wire == n.wire) {
                Some(o) => self.member(
                    flow,
                    &field_at,
                    Member::of_field(o.required, o.default.as_ref(), &o.doc, &o.ty),
                    Member::of_field(n.required, n.default.as_ref(), &n.doc, &n.ty),
                ),
                None => self.added(flow, &field_at, n.required, Some(&n.ty)),
            }
        }
        // Without `additionalProperties` any other key is allowed (JSON Schema's
        // default), which is what a map of any value says too.
        let (oe, ne) = (oe.unwrap_or(&Ty::Any), ne.unwrap_or(&Ty::Any));
        self.ty(flow, &format!("{at}.*"), oe, ne);
    }

    fn variant_added(&mut self, flow: Flow, at: &str) {
        self.push(
            flow,
            ChangeKind::VariantAdded,
            at,
            "alternative added".into(),
            Consumers,
            "existing {C} cannot read it",
        );
    }

    fn variant_removed(&mut self, flow: Flow, at: &str) {
        self.push(
            flow,
            ChangeKind::VariantRemoved,
            at,
            "alternative removed".into(),
            Producers,
            "existing {P} may still send it",
        );
    }
}

/// What fields and parameters have in common.
struct Member<'a> {
    required: bool,
    default: Option<&'a Value>,
    doc: &'a Doc,
    ty: &'a Ty,
}

impl<'a> Member<'a> {
    fn of_param(p: &'a Param) -> Self {
        Self::of_field(p.required, p.default.as_ref(), &p.doc, &p.ty)
    }

    fn of_field(required: bool, default: Option<&'a Value>, doc: &'a Doc, ty: &'a Ty) -> Self {
        Member {
            required,
            default,
            doc,
            ty,
        }
    }
}

fn is_struct(api: &Api, id: TypeId) -> bool {
    matches!(api.types[id].kind, TypeKind::Struct { .. })
}

fn is_enum(api: &Api, id: TypeId) -> bool {
    matches!(api.types[id].kind, TypeKind::StringEnum { .. })
}

/// A type in words, without generated names (they depend on `$ref` structure).
fn describe(api: &Api, ty: &Ty) -> String {
    match ty {
        Ty::Any => "value".into(),
        Ty::Object => "object".into(),
        Ty::String | Ty::Id(_) | Ty::Pattern(_) => "string".into(),
        Ty::Integer => "integer".into(),
        Ty::Number => "number".into(),
        Ty::Boolean => "boolean".into(),
        Ty::Option(t) => format!("nullable {}", describe(api, t)),
        Ty::Vec(t) => format!("array of {}", describe(api, t)),
        Ty::Map(t) => format!("map of {}", describe(api, t)),
        Ty::Named(id) | Ty::Boxed(id) => match api.types[*id].kind {
            TypeKind::Struct { .. } => "object".into(),
            TypeKind::StringEnum { .. } => "string enum".into(),
            TypeKind::Untagged { .. } | TypeKind::Tagged { .. } => "one-of".into(),
        },
    }
}

fn scheme(kind: &SchemeKind) -> String {
    match kind {
        SchemeKind::Authorization(s) if s.is_empty() => "`Authorization` header".into(),
        SchemeKind::Authorization(s) => format!("`Authorization: {s}` header"),
        SchemeKind::Query(name) => format!("`{name}` query parameter"),
        SchemeKind::Header(name) => format!("`{name}` header"),
    }
}

pub(super) fn status(s: Status) -> String {
    match s {
        Status::Code(c) => c.to_string(),
        Status::Class(c) => format!("{c}XX"),
    }
}
