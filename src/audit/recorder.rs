//! Gathers one request's decisions into events: one per resource type,
//! decision and field set, listing the resource ids, so a page of 50
//! contacts read alike is one event, not 50.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use uuid::Uuid;

use super::{AuditEvent, Decided, Subject};

/// What one request read of one resource.
#[derive(Default)]
struct Reads {
    fields: BTreeSet<String>,
    classes: BTreeSet<&'static str>,
    rules: BTreeSet<String>,
}

struct DenialKey {
    action: String,
    resource_type: &'static str,
    class: Option<&'static str>,
    rules: Vec<String>,
}

/// A denial's event exists from the first denial on, so the error the client
/// gets can name it before the request ends.
struct Denial {
    id: Uuid,
    ids: BTreeSet<Uuid>,
    fields: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    reads: HashMap<(&'static str, Uuid), Reads, foldhash::fast::RandomState>,
    /// In the order of their first denial (a request has a few kinds).
    denials: Vec<(DenialKey, Denial)>,
    events: Vec<AuditEvent>,
}

pub struct Recorder {
    subject: Subject,
    state: Mutex<State>,
}

impl Recorder {
    pub fn new(subject: Subject) -> Self {
        Recorder { subject, state: Mutex::new(State::default()) }
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not lose the events gathered so far.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An allowed read of `field` (of an audited class) of one resource.
    pub fn read(
        &self,
        resource_type: &'static str,
        id: Uuid,
        field: &str,
        class: &'static str,
        rules: &[String],
    ) {
        let mut state = self.state();
        let reads = state.reads.entry((resource_type, id)).or_default();
        if !reads.fields.contains(field) {
            reads.fields.insert(field.to_owned());
        }
        reads.classes.insert(class);
        for r in rules {
            if !reads.rules.contains(r) {
                reads.rules.insert(r.clone());
            }
        }
    }

    /// A denial; returns the id of the event that records it.
    pub fn deny(
        &self,
        action: &str,
        resource_type: &'static str,
        id: Option<Uuid>,
        field: Option<&str>,
        class: Option<&'static str>,
        rules: &[String],
    ) -> Uuid {
        let mut state = self.state();
        // A page repeats a few denials many times over (a field per row):
        // found by comparison, a key is built only for a new one.
        let found = state.denials.iter().position(|(k, _)| {
            k.action == action
                && k.resource_type == resource_type
                && k.class == class
                && k.rules == rules
        });
        let at = match found {
            Some(i) => i,
            None => {
                let key = DenialKey {
                    action: action.to_owned(),
                    resource_type,
                    class,
                    rules: rules.to_vec(),
                };
                let denial =
                    Denial { id: Uuid::new_v4(), ids: BTreeSet::new(), fields: BTreeSet::new() };
                state.denials.push((key, denial));
                state.denials.len() - 1
            }
        };
        let (_, denial) = &mut state.denials[at];
        denial.ids.extend(id);
        if let Some(f) = field {
            if !denial.fields.contains(f) {
                denial.fields.insert(f.to_owned());
            }
        }
        denial.id
    }

    /// An event formed by the caller (a whole request refused, an auditor's search).
    pub fn push(&self, decided: Decided) -> Uuid {
        let id = Uuid::new_v4();
        self.push_as(id, decided);
        id
    }

    /// [`Self::push`] under an id chosen by the caller (a cache hit names
    /// its events in its answer before recording them).
    pub fn push_as(&self, id: Uuid, decided: Decided) {
        let event = self.subject.event(id, decided);
        self.state().events.push(event);
    }

    /// The request's events, grouped; the recorder is empty afterwards.
    pub fn finish(&self) -> Vec<AuditEvent> {
        let state = std::mem::take(&mut *self.state());
        let mut events = state.events;
        // Resources read alike share an event.
        type Shape = (&'static str, Vec<String>, Vec<&'static str>, Vec<String>);
        let mut groups: HashMap<Shape, Vec<Uuid>> = HashMap::new();
        for ((resource_type, id), reads) in state.reads {
            let shape = (
                resource_type,
                reads.fields.into_iter().collect(),
                reads.classes.into_iter().collect(),
                reads.rules.into_iter().collect(),
            );
            groups.entry(shape).or_default().push(id);
        }
        let mut reads: Vec<_> = groups.into_iter().collect();
        reads.sort_by(|a, b| a.0.cmp(&b.0));
        for ((resource_type, fields, classes, rules), mut ids) in reads {
            ids.sort();
            events.push(self.subject.event(
                Uuid::new_v4(),
                Decided {
                    action: "read".to_owned(),
                    resource_type: resource_type.to_owned(),
                    resource_ids: ids,
                    fields,
                    field_classes: classes.into_iter().map(str::to_owned).collect(),
                    allowed: true,
                    rules,
                },
            ));
        }
        let mut denials: Vec<_> = state.denials.into_iter().collect();
        denials.sort_by_key(|(_, d)| d.id);
        for (key, denial) in denials {
            events.push(self.subject.event(
                denial.id,
                Decided {
                    action: key.action,
                    resource_type: key.resource_type.to_owned(),
                    resource_ids: denial.ids.into_iter().collect(),
                    fields: denial.fields.into_iter().collect(),
                    field_classes: key.class.into_iter().map(str::to_owned).collect(),
                    allowed: false,
                    rules: key.rules,
                },
            ));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        Recorder::new(Subject::test_viewer())
    }

    #[test]
    fn a_page_read_alike_is_one_event() {
        let r = recorder();
        let rules = vec!["R1".to_owned()];
        for n in 0..50u128 {
            r.read("contact", Uuid::from_u128(n), "email", "contact.identification", &rules);
            r.read("contact", Uuid::from_u128(n), "phone", "contact.identification", &rules);
        }
        r.read("contact", Uuid::from_u128(99), "email", "contact.identification", &rules);
        let events = r.finish();
        assert_eq!(events.len(), 2);
        let page =
            events.iter().find(|e| e.decided.resource_ids.len() == 50).expect("the page's event");
        assert_eq!(page.decided.fields, ["email", "phone"]);
        assert!(r.finish().is_empty());
    }

    #[test]
    fn a_denial_has_its_event_id_at_once_and_groups_by_class_and_rule() {
        let r = recorder();
        let rules = vec!["R12-default-deny".to_owned()];
        let a = r.deny(
            "read",
            "contact",
            Some(Uuid::from_u128(1)),
            Some("street"),
            Some("contact.home"),
            &rules,
        );
        let b = r.deny(
            "read",
            "contact",
            Some(Uuid::from_u128(2)),
            Some("postalAddress"),
            Some("contact.home"),
            &rules,
        );
        let c = r.deny(
            "read",
            "contact",
            Some(Uuid::from_u128(2)),
            Some("email"),
            Some("contact.identification"),
            &rules,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        let events = r.finish();
        assert_eq!(events.len(), 2);
        let home = events.iter().find(|e| e.id == a).expect("the home denial");
        assert!(!home.decided.allowed);
        assert_eq!(home.decided.resource_ids.len(), 2);
        assert_eq!(home.decided.fields, ["postalAddress", "street"]);
    }
}
