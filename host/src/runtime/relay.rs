//! From one kind's watcher events to its store, its owner index and the
//! changes its controllers follow — in an order a reader can trust: a
//! change is announced only once the store holds it.
//!
//! The order matters after a relist (a 410, a restarted API server): the
//! reflector's store builds the new list aside and swaps it in at
//! `InitDone`, serving the old list until then. Announcing each listed
//! object as it arrived (as this host once did) let a controller take the
//! key, read the store, find nothing — an object created while the host
//! was cut off is not in the old list — and drop the key as "gone"; the
//! object then waited, childless, for its next change. So the objects of
//! a relist are announced together once it is stored, and the ones the
//! relist no longer has are announced as deleted (no watch event ever
//! says so: they went while nobody watched — client-go's
//! `DeletedFinalStateUnknown`).

use std::collections::HashSet;
use std::sync::Arc;

use kube::api::DynamicObject;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio::sync::{broadcast, watch};

use super::owners::OwnerIndex;
use super::queue::Priority;

/// A change seen on a watched kind.
#[derive(Debug, Clone)]
pub enum Change {
    /// Added or modified; `Low` priority when it came from a list.
    Applied(Arc<DynamicObject>, Priority),
    Deleted(Arc<DynamicObject>),
}

/// The writing side of one kind's cache.
pub struct Relay {
    pub writer: Writer<DynamicObject>,
    pub index: Arc<OwnerIndex>,
    pub changes: broadcast::Sender<Change>,
    /// Set once the first list is stored.
    pub synced: watch::Sender<bool>,
}

impl Relay {
    /// Stores one event, then announces what it changed.
    pub fn follow(&mut self, event: watcher::Event<DynamicObject>) {
        let before = match event {
            watcher::Event::InitDone => Some(self.writer.as_reader().state()),
            _ => None,
        };
        self.writer.apply_watcher_event(&event);
        self.index.apply(&event);
        match event {
            watcher::Event::Apply(o) => self.send(Change::Applied(Arc::new(o), Priority::High)),
            watcher::Event::Delete(o) => self.send(Change::Deleted(Arc::new(o))),
            // Held by the writer until the relist ends.
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                let listed = self.writer.as_reader().state();
                let present: HashSet<Identity<'_>> = listed.iter().map(|o| identity(o)).collect();
                for gone in before.into_iter().flatten() {
                    if !present.contains(&identity(&gone)) {
                        self.send(Change::Deleted(gone));
                    }
                }
                for object in &listed {
                    self.send(Change::Applied(object.clone(), Priority::Low));
                }
                let _ = self.synced.send(true);
            }
        }
    }

    fn send(&self, change: Change) {
        // No subscriber yet is fine: they list the store on start.
        let _ = self.changes.send(change);
    }
}

/// Namespace, name and uid: one name deleted and made again while the
/// host was away is two objects.
type Identity<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn identity(object: &DynamicObject) -> Identity<'_> {
    let m = &object.metadata;
    (m.namespace.as_deref(), m.name.as_deref(), m.uid.as_deref())
}

#[cfg(test)]
mod tests {
    use kube::api::{ApiResource, GroupVersionKind};
    use kube::runtime::reflector::{ObjectRef, Store};

    use super::*;

    fn resource() -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "cache.operon.dev",
            "v1alpha1",
            "Memcached",
        ))
    }

    fn object(name: &str, uid: &str) -> DynamicObject {
        let mut o = DynamicObject::new(name, &resource()).within("ns");
        o.metadata.uid = Some(uid.to_string());
        o
    }

    struct Fixture {
        relay: Relay,
        store: Store<DynamicObject>,
        rx: broadcast::Receiver<Change>,
        synced: watch::Receiver<bool>,
    }

    fn fixture() -> Fixture {
        let writer = Writer::<DynamicObject>::new(resource());
        let store = writer.as_reader();
        let (changes, rx) = broadcast::channel(16);
        let (synced_tx, synced) = watch::channel(false);
        let relay = Relay {
            writer,
            index: Arc::new(OwnerIndex::default()),
            changes,
            synced: synced_tx,
        };
        Fixture {
            relay,
            store,
            rx,
            synced,
        }
    }

    /// What was announced so far, each checked against the store at the
    /// moment it is read: an applied object must be there to be read.
    fn announced(f: &mut Fixture) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(change) = f.rx.try_recv() {
            match change {
                Change::Applied(o, p) => {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    let key = ObjectRef::new_with(&name, resource()).within("ns");
                    assert!(f.store.get(&key).is_some(), "{name} announced, not stored");
                    seen.push(format!("applied {name} {p:?}"));
                }
                Change::Deleted(o) => seen.push(format!(
                    "deleted {}",
                    o.metadata.name.clone().unwrap_or_default()
                )),
            }
        }
        seen
    }

    fn list(f: &mut Fixture, objects: &[DynamicObject]) {
        f.relay.follow(watcher::Event::Init);
        for o in objects {
            f.relay.follow(watcher::Event::InitApply(o.clone()));
        }
    }

    #[test]
    fn a_relist_is_announced_once_it_is_stored() {
        let mut f = fixture();
        list(&mut f, &[object("kept", "u1"), object("gone", "u2")]);
        f.relay.follow(watcher::Event::InitDone);
        assert!(*f.synced.borrow());
        announced(&mut f);

        // Cut off; meanwhile `new` is made, `gone` deleted, `kept` stays.
        list(&mut f, &[object("kept", "u1"), object("new", "u3")]);
        assert_eq!(
            announced(&mut f),
            Vec::<String>::new(),
            "nothing is announced while the old list still serves"
        );
        f.relay.follow(watcher::Event::InitDone);
        let mut seen = announced(&mut f);
        seen.sort();
        assert_eq!(
            seen,
            ["applied kept Low", "applied new Low", "deleted gone"]
        );
    }

    #[test]
    fn a_name_made_again_while_away_is_a_deletion_and_an_addition() {
        let mut f = fixture();
        list(&mut f, &[object("m", "old")]);
        f.relay.follow(watcher::Event::InitDone);
        announced(&mut f);
        list(&mut f, &[object("m", "new")]);
        f.relay.follow(watcher::Event::InitDone);
        assert_eq!(announced(&mut f), ["deleted m", "applied m Low"]);
    }

    #[test]
    fn watch_events_are_announced_as_they_come() {
        let mut f = fixture();
        list(&mut f, &[]);
        f.relay.follow(watcher::Event::InitDone);
        f.relay.follow(watcher::Event::Apply(object("a", "u1")));
        assert_eq!(announced(&mut f), ["applied a High"]);
        f.relay.follow(watcher::Event::Delete(object("a", "u1")));
        assert_eq!(announced(&mut f), ["deleted a"]);
    }
}
