//! Blender's state as a session tracks it ([`SessionState`]), brought up to date from each
//! [`StateUpdate`] in O(changes), and the bounded view of it the tools show ([`StateView`]).
//!
//! The object list is an [`IndexSet`]: an add, a removal (`swap_remove`) and a rename (the new
//! name put in the old one's place) each cost O(1), so a command that changed k objects costs
//! O(k) here whatever the scene's size; only a full resync (a new journal epoch, a lost
//! cursor) replaces the whole list. What is tracked stays exact; only views are bounded.

use indexmap::IndexSet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Cursor, ObjectChange, ObjectsUpdate, Selection, StateUpdate};

/// Selected objects a view lists at most.
pub const SELECTED_SAMPLE: usize = 100;

/// Objects a view lists by default.
pub const OBJECTS_PAGE: usize = 100;

/// Blender's state as this session last saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionState {
    /// Every object in the scene (the order of the scene, give or take removals).
    pub objects: IndexSet<String>,
    /// Active and selected objects.
    pub selection: Selection,
    /// The last backend command sent.
    pub last_command: Option<String>,
    /// The last command's result (truncated when large), or its error.
    pub last_result: Option<Value>,
    /// When `objects`/`selection` were last read from Blender (Unix seconds).
    pub refreshed_at: Option<f64>,
    /// Where this state stands in Blender's change journal (`None`: the next report is a
    /// full one).
    #[serde(default)]
    pub cursor: Option<Cursor>,
}

/// What applying an update changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Whether objects or selection changed.
    pub changed: bool,
    /// Objects that appeared (a rename's new name included).
    pub added: Vec<String>,
    /// Objects that disappeared (a rename's old name included).
    pub removed: Vec<String>,
    /// Objects renamed (`[old, new]`; also in `removed` and `added`).
    pub renamed: Vec<(String, String)>,
}

impl SessionState {
    /// Apply an update read at `now`. O(changes) for a delta; O(objects) for a full update.
    /// A delta that does not fit the tracked list (an object added twice, a removal of an
    /// unknown one: the list was overwritten by `update_state`) is applied as far as it
    /// goes and the cursor dropped, so the next report is a full one.
    pub fn apply(&mut self, update: &StateUpdate, now: f64) -> Applied {
        let mut applied = Applied::default();
        let mut consistent = true;
        match &update.objects {
            ObjectsUpdate::Full(all) => {
                let new: IndexSet<String> = all.iter().cloned().collect();
                if new != self.objects {
                    applied.added = new.difference(&self.objects).cloned().collect();
                    applied.removed = self.objects.difference(&new).cloned().collect();
                    applied.changed = true;
                    self.objects = new;
                }
            }
            ObjectsUpdate::Changes(changes) => {
                for change in changes {
                    applied.changed = true;
                    consistent &= self.apply_change(change, &mut applied);
                }
            }
        }
        if let Some(selection) = &update.selection
            && *selection != self.selection
        {
            self.selection = selection.clone();
            applied.changed = true;
        }
        if let Some(count) = update.object_count
            && count != self.objects.len()
        {
            consistent = false;
        }
        self.cursor = if consistent {
            update.cursor.clone()
        } else {
            tracing::warn!(
                "the tracked object list does not match Blender's report ({} tracked, {:?} in Blender): the next command reads the whole state",
                self.objects.len(),
                update.object_count
            );
            None
        };
        self.refreshed_at = Some(now);
        applied
    }

    fn apply_change(&mut self, change: &ObjectChange, applied: &mut Applied) -> bool {
        match change {
            ObjectChange::Added(name) => {
                applied.added.push(name.clone());
                self.objects.insert(name.clone())
            }
            ObjectChange::Removed(name) => {
                applied.removed.push(name.clone());
                self.objects.swap_remove(name)
            }
            ObjectChange::Renamed { from, to } => {
                applied.removed.push(from.clone());
                applied.added.push(to.clone());
                applied.renamed.push((from.clone(), to.clone()));
                match self.objects.get_index_of(from.as_str()) {
                    Some(at) => {
                        if self.objects.contains(to.as_str()) {
                            self.objects.swap_remove_index(at);
                            return false;
                        }
                        // Appended last, then swapped into the old name's place: O(1), the
                        // order kept.
                        self.objects.insert(to.clone());
                        self.objects.swap_remove_index(at);
                        true
                    }
                    None => {
                        self.objects.insert(to.clone());
                        false
                    }
                }
            }
        }
    }

    /// The bounded view of this state: `limit` objects from `offset`, a sample of the
    /// selection, and counts.
    pub fn view(&self, offset: usize, limit: usize) -> StateView {
        let objects: Vec<String> = self
            .objects
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        let next = offset.saturating_add(objects.len());
        StateView {
            object_count: self.objects.len(),
            objects_offset: offset,
            objects_next_offset: (next < self.objects.len()).then_some(next),
            objects,
            selection: Selection {
                active: self.selection.active.clone(),
                selected: self
                    .selection
                    .selected
                    .iter()
                    .take(SELECTED_SAMPLE)
                    .cloned()
                    .collect(),
            },
            selected_count: self.selection.selected.len(),
            last_command: self.last_command.clone(),
            last_result: self.last_result.clone(),
            refreshed_at: self.refreshed_at,
        }
    }
}

/// A session's tracked state as the tools show it: counts, one page of the object list, a
/// sample of the selection.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StateView {
    /// How many objects the session tracks.
    pub object_count: usize,
    /// This page of the tracked objects.
    pub objects: Vec<String>,
    /// Tracked objects skipped before this page.
    pub objects_offset: usize,
    /// The `objects_offset` of the next page, when there are more objects.
    pub objects_next_offset: Option<usize>,
    /// The active object and the selected ones (the first 100; see `selected_count`).
    pub selection: Selection,
    /// How many objects are selected.
    pub selected_count: usize,
    /// The last backend command sent.
    pub last_command: Option<String>,
    /// The last command's result (truncated when large), or its error.
    pub last_result: Option<Value>,
    /// When objects and selection were last read from Blender (Unix seconds).
    pub refreshed_at: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: u64, changes: Vec<ObjectChange>, count: usize) -> StateUpdate {
        StateUpdate {
            cursor: Some(Cursor {
                epoch: "e".into(),
                seq,
            }),
            scene: None,
            object_count: Some(count),
            objects: ObjectsUpdate::Changes(changes),
            selection: None,
        }
    }

    fn full(names: &[&str]) -> StateUpdate {
        StateUpdate {
            cursor: Some(Cursor {
                epoch: "e".into(),
                seq: 1,
            }),
            scene: None,
            object_count: Some(names.len()),
            objects: ObjectsUpdate::Full(names.iter().map(|s| s.to_string()).collect()),
            selection: Some(Selection::default()),
        }
    }

    #[test]
    fn deltas_keep_the_list_exact_and_renames_keep_their_place() {
        let mut s = SessionState::default();
        s.apply(&full(&["A", "B", "C"]), 1.0);
        let a = s.apply(
            &delta(
                2,
                vec![
                    ObjectChange::Renamed {
                        from: "A".into(),
                        to: "Z".into(),
                    },
                    ObjectChange::Added("D".into()),
                    ObjectChange::Removed("B".into()),
                ],
                3,
            ),
            2.0,
        );
        assert!(a.changed);
        let mut names: Vec<&str> = s.objects.iter().map(String::as_str).collect();
        assert_eq!(names[0], "Z", "the renamed object kept its place");
        names.sort();
        assert_eq!(names, ["C", "D", "Z"]);
        assert_eq!(s.cursor.as_ref().map(|c| c.seq), Some(2));
        assert!(!s.apply(&delta(2, vec![], 3), 3.0).changed);
    }

    #[test]
    fn a_delta_that_does_not_fit_drops_the_cursor() {
        let mut s = SessionState::default();
        s.apply(&full(&["A"]), 1.0);
        s.apply(
            &delta(2, vec![ObjectChange::Removed("Nope".into())], 1),
            2.0,
        );
        assert!(s.cursor.is_none(), "the next report is a full one");
    }

    #[test]
    fn the_view_pages_the_list_and_samples_the_selection() {
        let mut s = SessionState::default();
        let names: Vec<String> = (0..250).map(|i| format!("O{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        s.apply(&full(&refs), 1.0);
        s.selection.selected = names.clone();
        let v = s.view(200, 100);
        assert_eq!(v.object_count, 250);
        assert_eq!(v.objects.len(), 50);
        assert_eq!(v.objects_next_offset, None);
        assert_eq!(s.view(0, 100).objects_next_offset, Some(100));
        assert_eq!(v.selection.selected.len(), SELECTED_SAMPLE);
        assert_eq!(v.selected_count, 250);
    }
}
