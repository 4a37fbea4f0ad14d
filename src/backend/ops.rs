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
    /// Read the whole scene: objects, selection, materials count ([`Output::Scene`]).
    SceneInfo,
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

/// The scene: what `get_scene_info` returns. The same type reads the classic addon's own
/// `get_scene_info` answer (which lists at most 10 objects and no selection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SceneInfo {
    /// The scene's name.
    #[serde(default)]
    pub name: String,
    /// How many objects the scene has.
    #[serde(default)]
    pub object_count: usize,
    /// The objects (every one, from this server's scene program).
    #[serde(default)]
    pub objects: Vec<SceneObject>,
    /// How many materials the file has.
    #[serde(default)]
    pub materials_count: usize,
    /// The active and selected objects.
    #[serde(default)]
    pub selection: Selection,
}

impl SceneInfo {
    /// The scene's state as a session tracks it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            scene: Some(self.name.clone()),
            objects: self.objects.iter().map(|o| o.name.clone()).collect(),
            active: self.selection.active.clone(),
            selected: self.selection.selected.clone(),
        }
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
