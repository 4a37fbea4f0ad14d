//! What a backend reports about Blender's state after an operation: either the whole state
//! (a [`Snapshot`], or the first report of a session) or the changes since the session's
//! [`Cursor`] in the Blender-side change journal, so a session brings its tracked state up to
//! date in O(changes) instead of reading every object of the scene.

use serde::{Deserialize, Serialize};

use super::ops::{Selection, Snapshot};

/// Where a session stands in the Blender-side change journal: the journal's epoch (a new one
/// each time the journal starts afresh: Blender restarted, the helper was reinstalled) and
/// the sequence number of the last change the session has applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cursor {
    /// The journal's epoch.
    pub epoch: String,
    /// The last change applied.
    pub seq: u64,
}

/// One change to the scene's object list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectChange {
    /// An object appeared (added, or linked into the scene).
    Added(String),
    /// An object left the scene (removed, or unlinked).
    Removed(String),
    /// An object was renamed.
    Renamed {
        /// Its old name.
        from: String,
        /// Its new name.
        to: String,
    },
}

/// How the object list is reported.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectsUpdate {
    /// Every object of the scene: the session's list is replaced.
    Full(Vec<String>),
    /// The changes since the session's cursor, in the order they happened.
    Changes(Vec<ObjectChange>),
}

/// Blender's state after an operation, as the session is to apply it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    /// The journal position this update brings the session to (`None`: the backend keeps
    /// no journal; the next update is a full one again).
    pub cursor: Option<Cursor>,
    /// The active scene's name, when reported.
    pub scene: Option<String>,
    /// How many objects Blender counts in the scene, when reported (a check on the list).
    pub object_count: Option<usize>,
    /// The object list, whole or as changes.
    pub objects: ObjectsUpdate,
    /// The selection, when it changed since the cursor (always with a full update).
    pub selection: Option<Selection>,
}

impl StateUpdate {
    /// Whether the update replaces the whole state (a resync).
    pub fn is_full(&self) -> bool {
        matches!(self.objects, ObjectsUpdate::Full(_))
    }
}

impl From<Snapshot> for StateUpdate {
    fn from(s: Snapshot) -> Self {
        StateUpdate {
            cursor: None,
            scene: s.scene,
            object_count: Some(s.objects.len()),
            objects: ObjectsUpdate::Full(s.objects),
            selection: Some(Selection {
                active: s.active,
                selected: s.selected,
            }),
        }
    }
}
