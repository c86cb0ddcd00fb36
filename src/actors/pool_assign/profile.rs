//! Assignment profiles: which predicates filter pools and which scorers rank them, read from
//! the `pool-assign-profiles` ConfigMap.

use serde::Deserialize;
use serde_json::Value;

/// ConfigMap holding the profiles, in the controller's namespace.
pub const PROFILES_CONFIGMAP: &str = "pool-assign-profiles";
/// ConfigMap key with the JSON array of profiles.
pub const PROFILES_KEY: &str = "profiles";
/// The profile `poolRef: "*"` uses.
pub const DEFAULT_PROFILE: &str = "default";

/// A filter a pool must pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Predicate {
    /// The pool template runs one of the sandbox's container images.
    Image,
    /// The pool template requests at least what the sandbox template requests.
    Resource,
    /// The sandbox's nodeSelector and required node affinity hold against the pool's labels.
    NodeSelector,
    /// The sandbox and the pool carry equal values for each of these labels.
    LabelSelector { keys: Vec<String> },
}

/// `resbalance` strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Prefer emptier pools: `1 - allocated/total`.
    LeastAllocated,
    /// Prefer fuller pools: `allocated/total`.
    MostAllocated,
}

/// A scorer and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedScorer {
    pub strategy: Strategy,
    pub weight: i64,
}

/// Predicates (all must pass) and weighted scorers (summed; highest wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub predicates: Vec<Predicate>,
    pub scorers: Vec<WeightedScorer>,
}

impl Profile {
    /// The built-in default: image, resource and nodeselector; resbalance LeastAllocated × 100.
    pub fn builtin() -> Self {
        Self {
            name: DEFAULT_PROFILE.to_string(),
            predicates: vec![
                Predicate::Image,
                Predicate::Resource,
                Predicate::NodeSelector,
            ],
            scorers: vec![WeightedScorer {
                strategy: Strategy::LeastAllocated,
                weight: 100,
            }],
        }
    }
}

/// A profiles document that cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProfileError {
    #[error("profiles is not a JSON array of profiles: {0}")]
    Json(String),
    #[error("profile {profile:?}: unknown {kind} plugin {name:?}")]
    UnknownPlugin {
        profile: String,
        kind: &'static str,
        name: String,
    },
    #[error("profile {profile:?}: invalid args for {plugin}: {reason}")]
    InvalidArgs {
        profile: String,
        plugin: String,
        reason: String,
    },
}

/// The profile in force and, when the configuration could not be used as written, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileChoice {
    pub profile: Profile,
    /// Set when falling back to the built-in default despite a configuration.
    pub note: Option<String>,
}

/// Picks profile `name` from the ConfigMap's `profiles` value. Missing or empty ⇒ the
/// built-in default; invalid or no such profile ⇒ the built-in default with a note.
pub fn load_profile(profiles: Option<&str>, name: &str) -> ProfileChoice {
    let builtin = |note: Option<String>| ProfileChoice {
        profile: Profile::builtin(),
        note,
    };
    let Some(raw) = profiles.filter(|r| !r.trim().is_empty()) else {
        return builtin(None);
    };
    match parse_profiles(raw) {
        Err(e) => builtin(Some(format!(
            "{PROFILES_CONFIGMAP} is invalid ({e}); using the built-in default profile"
        ))),
        Ok(list) => match list.into_iter().find(|p| p.name == name) {
            Some(profile) => ProfileChoice {
                profile,
                note: None,
            },
            None => builtin(Some(format!(
                "{PROFILES_CONFIGMAP} has no profile {name:?}; using the built-in default profile"
            ))),
        },
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    name: String,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    plugin_conf: Vec<RawConf>,
}

#[derive(Deserialize, Default)]
struct RawPlugins {
    #[serde(default)]
    predicate: Vec<String>,
    #[serde(default)]
    score: Vec<RawScore>,
}

#[derive(Deserialize)]
struct RawScore {
    name: String,
    #[serde(default)]
    weight: i64,
}

#[derive(Deserialize)]
struct RawConf {
    name: String,
    #[serde(default)]
    args: Value,
}

/// Parses the `profiles` JSON array. Unknown plugin names and bad args are errors (upstream
/// skips unknown names silently, so a typo drops a filter without a word).
pub fn parse_profiles(raw: &str) -> Result<Vec<Profile>, ProfileError> {
    let list: Vec<RawProfile> =
        serde_json::from_str(raw).map_err(|e| ProfileError::Json(e.to_string()))?;
    list.into_iter().map(build).collect()
}

fn build(raw: RawProfile) -> Result<Profile, ProfileError> {
    let args = |plugin: &str| {
        raw.plugin_conf
            .iter()
            .find(|c| c.name == plugin)
            .map(|c| &c.args)
            .filter(|a| !a.is_null())
    };
    let predicates = raw
        .plugins
        .predicate
        .iter()
        .map(|name| predicate(&raw.name, name, args(name)))
        .collect::<Result<_, _>>()?;
    let scorers = raw
        .plugins
        .score
        .iter()
        .map(|s| {
            if s.name != "resbalance" {
                return Err(ProfileError::UnknownPlugin {
                    profile: raw.name.clone(),
                    kind: "score",
                    name: s.name.clone(),
                });
            }
            Ok(WeightedScorer {
                strategy: strategy(&raw.name, args(&s.name))?,
                weight: s.weight,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Profile {
        name: raw.name,
        predicates,
        scorers,
    })
}

fn predicate(profile: &str, name: &str, args: Option<&Value>) -> Result<Predicate, ProfileError> {
    Ok(match name {
        "image" => Predicate::Image,
        "resource" => Predicate::Resource,
        "nodeselector" => Predicate::NodeSelector,
        "labelselector" => Predicate::LabelSelector {
            keys: label_keys(profile, args)?,
        },
        _ => {
            return Err(ProfileError::UnknownPlugin {
                profile: profile.to_string(),
                kind: "predicate",
                name: name.to_string(),
            });
        }
    })
}

fn label_keys(profile: &str, args: Option<&Value>) -> Result<Vec<String>, ProfileError> {
    let Some(keys) = args.and_then(|a| a.get("keys")).filter(|k| !k.is_null()) else {
        return Ok(Vec::new());
    };
    serde_json::from_value(keys.clone()).map_err(|e| ProfileError::InvalidArgs {
        profile: profile.to_string(),
        plugin: "labelselector".to_string(),
        reason: format!("keys must be an array of strings: {e}"),
    })
}

fn strategy(profile: &str, args: Option<&Value>) -> Result<Strategy, ProfileError> {
    match args.and_then(|a| a.get("strategy")).and_then(Value::as_str) {
        None | Some("LeastAllocated") => Ok(Strategy::LeastAllocated),
        Some("MostAllocated") => Ok(Strategy::MostAllocated),
        Some(other) => Err(ProfileError::InvalidArgs {
            profile: profile.to_string(),
            plugin: "resbalance".to_string(),
            reason: format!("strategy {other:?} is not MostAllocated or LeastAllocated"),
        }),
    }
}
