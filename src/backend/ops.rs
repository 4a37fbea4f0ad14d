//! The operations this server sends to Blender, as typed values, and their typed results.
//!
//! An [`Operation`] says *what* to do ("run this code", "read the scene"); a backend decides
//! how that becomes bytes on its wire. The result of every operation is one [`Output`]
//! variant; the registry's typed calls (`execute_code`, `scene_info`, …) unwrap the variant
//! they asked for.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One thing to ask of Blender.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Run Python code; the result is what it printed ([`Output::Code`]).
    ExecuteCode {
        /// The Python source.
        code: String,
    },
    /// Read the scene: a summary and one page of its objects ([`Output::Scene`]).
    SceneInfo(SceneQuery),
    /// Details of one object by exact name ([`Output::Object`]).
    ObjectInfo {
        /// The object's name.
        name: String,
    },
    /// A PNG of the viewport, `max_size` pixels on its longest side ([`Output::Screenshot`]).
    Screenshot {
        /// Longest side in pixels.
        max_size: u32,
    },
    /// What the Blender side says about itself ([`Output::Addon`]).
    AddonInfo,
    /// Any other command of the backend's protocol, by name, with its parameters
    /// ([`Output::Raw`]).
    Raw {
        /// The command name (for the classic addon, its `type`).
        command: String,
        /// Its parameters, if any.
        params: Option<Value>,
    },
}

/// The result of an [`Operation`].
#[derive(Debug, Clone)]
pub enum Output {
    /// What [`Operation::ExecuteCode`] printed.
    Code(CodeOutput),
    /// The scene, from [`Operation::SceneInfo`].
    Scene(SceneInfo),
    /// One object's details (the backend's own shape), from [`Operation::ObjectInfo`].
    Object(Value),
    /// The image from [`Operation::Screenshot`].
    Screenshot(Screenshot),
    /// From [`Operation::AddonInfo`].
    Addon(AddonInfo),
    /// The raw result of [`Operation::Raw`].
    Raw(Value),
}

impl Output {
    /// The variant's name, for "unexpected output" errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::Code(_) => "code output",
            Output::Scene(_) => "scene info",
            Output::Object(_) => "object info",
            Output::Screenshot(_) => "screenshot",
            Output::Addon(_) => "addon info",
            Output::Raw(_) => "raw result",
        }
    }
}

/// What running code produced.
#[derive(Debug, Clone, Serialize)]
pub struct CodeOutput {
    /// Everything the code printed.
    pub stdout: String,
}

/// The selection in Blender.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Selection {
    /// The active object.
    #[serde(default)]
    pub active: Option<String>,
    /// All selected objects.
    #[serde(default)]
    pub selected: Vec<String>,
}

/// One object as the scene listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SceneObject {
    /// The object's name.
    pub name: String,
    /// Its type (`MESH`, `CAMERA`, `LIGHT`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its location, rounded to 2 decimals.
    #[serde(default)]
    pub location: Vec<f64>,
}

/// Which objects of the scene a [`Operation::SceneInfo`] lists, and how much at most.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SceneQuery {
    /// Objects listed at most.
    pub limit: usize,
    /// Matching objects skipped first.
    pub offset: usize,
    /// Only objects of this type (`MESH`, `LIGHT`, …).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only objects whose name matches this glob (`*`, `?`, `[abc]`; case-sensitive).
    #[serde(rename = "name", skip_serializing_if = "Option::is_none")]
    pub name_pattern: Option<String>,
    /// Only objects in this collection (or its children).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The largest answer, in bytes of JSON: fewer objects are listed to stay under it.
    pub max_bytes: usize,
}

impl Default for SceneQuery {
    fn default() -> Self {
        SceneQuery {
            limit: 100,
            offset: 0,
            kind: None,
            name_pattern: None,
            collection: None,
            max_bytes: 65536,
        }
    }
}

/// One collection as the scene summary shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionSummary {
    /// The collection's name.
    pub name: String,
    /// Objects linked directly in it.
    pub objects: usize,
}

/// The scene: what `get_scene_info` returns, a summary and one page of objects. The same
/// type reads the classic addon's own `get_scene_info` answer (which lists at most 10
/// objects and no selection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SceneInfo {
    /// The scene's name.
    #[serde(default)]
    pub name: String,
    /// How many objects the scene has.
    #[serde(default)]
    pub object_count: usize,
    /// How many objects of each type (`MESH`, `CAMERA`, …).
    #[serde(default)]
    pub objects_by_type: std::collections::BTreeMap<String, usize>,
    /// How many collections the file has.
    #[serde(default)]
    pub collection_count: usize,
    /// The collections (the first 100).
    #[serde(default)]
    pub collections: Vec<CollectionSummary>,
    /// How many materials the file has.
    #[serde(default)]
    pub materials_count: usize,
    /// The active object and the selected ones (the first 100; see `selected_count`).
    #[serde(default)]
    pub selection: Selection,
    /// How many objects are selected.
    #[serde(default)]
    pub selected_count: usize,
    /// This page of the objects that match the query, in scene order.
    #[serde(default)]
    pub objects: Vec<SceneObject>,
    /// How many objects match the query (all pages).
    #[serde(default)]
    pub matched: usize,
    /// Matching objects skipped before this page.
    #[serde(default)]
    pub offset: usize,
    /// The `offset` of the next page, when more objects match.
    #[serde(default)]
    pub next_offset: Option<usize>,
    /// Whether the page was cut short to stay under the answer size limit.
    #[serde(default)]
    pub truncated_by_size: bool,
}

impl SceneInfo {
    /// What history keeps of a scene read: the counts and which page was listed, not the
    /// page itself (the model got that in the tool result; a page of 100 objects written
    /// twice per call — the entry and the session's last result — was most of the row).
    pub fn history_summary(&self) -> serde_json::Value {
        serde_json::json!({
            "object_count": self.object_count,
            "objects_by_type": self.objects_by_type,
            "selected_count": self.selected_count,
            "matched": self.matched,
            "offset": self.offset,
            "listed": self.objects.len(),
            "next_offset": self.next_offset,
        })
    }
}

/// Blender's state after an operation, as a backend reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    /// Name of the active scene.
    #[serde(default)]
    pub scene: Option<String>,
    /// Names of every object in the scene.
    pub objects: Vec<String>,
    /// Name of the active object, if any.
    pub active: Option<String>,
    /// Names of the selected objects.
    pub selected: Vec<String>,
}

/// A screenshot taken by Blender.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Width in pixels, when Blender said.
    pub width: Option<u64>,
    /// Height in pixels, when Blender said.
    pub height: Option<u64>,
}

/// What the Blender side said about itself.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AddonInfo {
    /// Protocol level; 0 for the classic addon, which has no `get_addon_info`.
    pub protocol_version: u64,
    /// The raw `get_addon_info` result, if the addon has the command.
    pub info: Option<Value>,
}
