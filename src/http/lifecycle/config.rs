//! Server configuration: the upstream `~/.sandbox.toml` format plus our own keys.
//!
//! Resolution: explicit path, then env `SANDBOX_CONFIG_PATH`, then `~/.sandbox.toml`. A missing
//! file means defaults. Env `OPENSANDBOX_SERVER_API_KEY` overrides `server.api_key`.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// Env var naming the config file.
pub const ENV_CONFIG_PATH: &str = "SANDBOX_CONFIG_PATH";
/// Env var overriding `server.api_key` (even to empty).
pub const ENV_API_KEY: &str = "OPENSANDBOX_SERVER_API_KEY";

/// Which runtime backs the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeType {
    Kubernetes,
    Docker,
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The lifecycle server configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// `None` (or blank) disables authentication.
    pub api_key: Option<String>,
    pub log_level: String,
    pub max_sandbox_timeout_seconds: Option<u64>,
    /// Public host (optionally with port and path) used in server-proxy endpoints.
    pub eip: Option<String>,
    /// Image holding the static executor at `/opensandbox-executor`.
    pub executor_image: String,
    /// Answer create with `Pending` at once instead of waiting for an address.
    pub answer_pending: bool,
    /// Requests per second per API key; 0 disables rate limiting.
    pub rate_limit_per_second: u32,
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Time a client has to send a whole request body (slow clients get 408).
    pub body_read_timeout_seconds: u64,
    pub runtime_type: RuntimeType,
    pub execd_image: Option<String>,
    pub namespace: String,
    pub workload_provider: String,
    pub sandbox_create_timeout_seconds: u64,
    pub image_pull_policy: String,
    /// Non-fatal findings (unknown keys, missing file) for the caller to log.
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            api_key: None,
            log_level: "INFO".into(),
            max_sandbox_timeout_seconds: None,
            eip: None,
            executor_image: "opensandbox/executor:latest".into(),
            answer_pending: false,
            rate_limit_per_second: 0,
            max_body_bytes: 1024 * 1024,
            body_read_timeout_seconds: 30,
            runtime_type: RuntimeType::Kubernetes,
            execd_image: None,
            namespace: "default".into(),
            workload_provider: "batchsandbox".into(),
            sandbox_create_timeout_seconds: 60,
            image_pull_policy: "IfNotPresent".into(),
            warnings: Vec::new(),
        }
    }
}

/// Upstream keys we accept without using them (no warning).
const IGNORED: &[&str] = &[
    "server.timeout_keep_alive",
    "server.limit_concurrency",
    "server.backlog",
    "server.thread_pool_size",
    "server.loop",
    "server.http",
    "server.timeout_graceful_shutdown",
    "runtime.execd_run_as_init",
    "kubernetes.kubeconfig_path",
    "kubernetes.service_account",
    "kubernetes.batchsandbox_template_file",
    "kubernetes.informer_enabled",
    "kubernetes.informer_resync_seconds",
    "kubernetes.informer_watch_timeout_seconds",
    "kubernetes.read_qps",
    "kubernetes.read_burst",
    "kubernetes.write_qps",
    "kubernetes.write_burst",
    "kubernetes.sandbox_create_poll_interval_seconds",
    "kubernetes.snapshot_create_timeout_seconds",
    "kubernetes.execd_init_resources",
    "kubernetes.pool_acquisition_timeout_seconds",
    "kubernetes.insecure_skip_tls_verify",
];

/// Whole tables we accept without reading them.
const IGNORED_TABLES: &[&str] = &[
    "log",
    "renew_intent",
    "ingress",
    "docker",
    "storage",
    "store",
    "egress",
    "secure_runtime",
    "agent_sandbox",
    "proxy",
    "otel",
    "pause",
];

impl ServerConfig {
    /// Loads from `path`, else `$SANDBOX_CONFIG_PATH`, else `~/.sandbox.toml`, then applies
    /// the env API key override.
    pub fn load(path: Option<&Path>) -> Result<ServerConfig, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(ENV_CONFIG_PATH).map(PathBuf::from))
            .or_else(|| dirs::home_dir().map(|h| h.join(".sandbox.toml")));
        let mut cfg = match path {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(text) => Self::from_toml_str(&text).map_err(|e| match e {
                    ConfigError::Parse { message, .. } => ConfigError::Parse { path: p, message },
                    other => other,
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut cfg = Self::default();
                    cfg.warnings
                        .push(format!("{} not found; using defaults", p.display()));
                    cfg
                }
                Err(source) => return Err(ConfigError::Io { path: p, source }),
            },
            None => Self::default(),
        };
        if let Ok(key) = std::env::var(ENV_API_KEY) {
            cfg.api_key = Some(key);
        }
        cfg.api_key = cfg.api_key.filter(|k| !k.trim().is_empty());
        Ok(cfg)
    }

    /// Parses a TOML document (no env overrides).
    pub fn from_toml_str(text: &str) -> Result<ServerConfig, ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: PathBuf::from("<config>"),
                message: e.message().to_string(),
            })?;
        let mut cfg = Self::default();
        for (section, value) in &table {
            let Some(t) = value.as_table() else {
                cfg.warnings
                    .push(format!("unknown key `{section}` ignored"));
                continue;
            };
            match section.as_str() {
                "server" | "runtime" | "kubernetes" => {
                    for (key, v) in t {
                        cfg.set(&format!("{section}.{key}"), v)?;
                    }
                }
                s if IGNORED_TABLES.contains(&s) => {}
                _ => cfg
                    .warnings
                    .push(format!("unknown section `[{section}]` ignored")),
            }
        }
        cfg.api_key = cfg.api_key.filter(|k| !k.trim().is_empty());
        Ok(cfg)
    }

    fn set(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        match key {
            "server.host" => self.host = string(key, v)?,
            "server.port" => {
                self.port = int(key, v)
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| invalid(key, "must be between 1 and 65535"))?
            }
            "server.api_key" => self.api_key = Some(string(key, v)?),
            "server.log_level" => {
                let level = string(key, v)?;
                const LEVELS: &[&str] = &[
                    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL",
                ];
                if !LEVELS.contains(&level.to_ascii_uppercase().as_str()) {
                    return Err(invalid(key, format!("unknown level {level:?}")));
                }
                self.log_level = level;
            }
            "server.max_sandbox_timeout_seconds" => {
                let n = int(key, v)?;
                if n < 60 {
                    return Err(invalid(key, "must be at least 60"));
                }
                self.max_sandbox_timeout_seconds = Some(n as u64);
            }
            "server.eip" => self.eip = Some(string(key, v)?).filter(|s| !s.trim().is_empty()),
            "server.executor_image" => self.executor_image = non_blank(key, v)?,
            "server.answer_pending" => self.answer_pending = boolean(key, v)?,
            "server.rate_limit_per_second" => {
                self.rate_limit_per_second = u32::try_from(int(key, v)?)
                    .map_err(|_| invalid(key, "must be between 0 and 4294967295"))?
            }
            "server.max_body_bytes" => {
                let n = int(key, v)?;
                if n < 1024 {
                    return Err(invalid(key, "must be at least 1024"));
                }
                self.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "server.body_read_timeout_seconds" => {
                let n = int(key, v)?;
                if !(1..=3600).contains(&n) {
                    return Err(invalid(key, "must be between 1 and 3600"));
                }
                self.body_read_timeout_seconds = n as u64;
            }
            "runtime.type" => {
                self.runtime_type = match string(key, v)?.as_str() {
                    "kubernetes" => RuntimeType::Kubernetes,
                    "docker" => RuntimeType::Docker,
                    other => {
                        return Err(invalid(
                            key,
                            format!("must be \"kubernetes\" or \"docker\", got {other:?}"),
                        ));
                    }
                }
            }
            "runtime.execd_image" => self.execd_image = Some(string(key, v)?),
            "kubernetes.namespace" => self.namespace = non_blank(key, v)?,
            "kubernetes.workload_provider" => {
                let p = string(key, v)?.to_ascii_lowercase();
                if p != "batchsandbox" {
                    return Err(invalid(key, "only \"batchsandbox\" is supported"));
                }
                self.workload_provider = p;
            }
            "kubernetes.sandbox_create_timeout_seconds" => {
                let n = int(key, v)?;
                if !(1..=3600).contains(&n) {
                    return Err(invalid(key, "must be between 1 and 3600"));
                }
                self.sandbox_create_timeout_seconds = n as u64;
            }
            "kubernetes.image_pull_policy" => {
                let p = string(key, v)?;
                if !["Always", "IfNotPresent", "Never"].contains(&p.as_str()) {
                    return Err(invalid(key, "must be Always, IfNotPresent or Never"));
                }
                self.image_pull_policy = p;
            }
            k if IGNORED.contains(&k) => {}
            k => self.warnings.push(format!("unknown key `{k}` ignored")),
        }
        Ok(())
    }
}

fn string(key: &str, v: &Value) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(key, "must be a string"))
}

fn non_blank(key: &str, v: &Value) -> Result<String, ConfigError> {
    let s = string(key, v)?;
    if s.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(s)
}

fn int(key: &str, v: &Value) -> Result<i64, ConfigError> {
    v.as_integer()
        .ok_or_else(|| invalid(key, "must be an integer"))
}

fn boolean(key: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool().ok_or_else(|| invalid(key, "must be a boolean"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_known_keys() {
        let cfg = ServerConfig::from_toml_str(
            "[server]\nport = 9090\napi_key = \"k\"\nanswer_pending = true\n\
             [runtime]\ntype = \"kubernetes\"\nexecd_image = \"x\"\n\
             [kubernetes]\nnamespace = \"sbx\"\nsandbox_create_timeout_seconds = 5\n",
        )
        .unwrap();
        assert_eq!(cfg.port, 9090);
        assert_eq!(cfg.api_key.as_deref(), Some("k"));
        assert!(cfg.answer_pending);
        assert_eq!(cfg.namespace, "sbx");
        assert_eq!(cfg.sandbox_create_timeout_seconds, 5);
        assert!(cfg.warnings.is_empty());
        assert_eq!(
            ServerConfig::from_toml_str("").unwrap().runtime_type,
            RuntimeType::Kubernetes
        );
    }

    #[test]
    fn invalid_values_name_the_key_and_unknown_keys_warn() {
        let e = ServerConfig::from_toml_str("[server]\nport = 70000\n").unwrap_err();
        assert_eq!(e.to_string(), "server.port: must be between 1 and 65535");
        let e = ServerConfig::from_toml_str("[server]\nmax_sandbox_timeout_seconds = 10\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("server.max_sandbox_timeout_seconds:")
        );
        let cfg = ServerConfig::from_toml_str("[server]\nfoo = 1\n[bar]\nx = 1\n").unwrap();
        assert_eq!(cfg.warnings.len(), 2);
        assert!(ServerConfig::from_toml_str("[server\n").is_err());
        let cfg = ServerConfig::from_toml_str("[server]\napi_key = \"  \"\n").unwrap();
        assert_eq!(cfg.api_key, None);
    }

    #[test]
    fn load_reads_the_given_file_and_defaults_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbox.toml");
        std::fs::write(
            &path,
            "[kubernetes]\nnamespace = \"team\"\n[server]\nport = 0\n",
        )
        .unwrap();
        let e = ServerConfig::load(Some(&path)).unwrap_err();
        assert_eq!(e.to_string(), "server.port: must be between 1 and 65535");
        std::fs::write(&path, "[kubernetes]\nnamespace = \"team\"\n").unwrap();
        assert_eq!(ServerConfig::load(Some(&path)).unwrap().namespace, "team");
        let missing = ServerConfig::load(Some(&dir.path().join("nope.toml"))).unwrap();
        assert_eq!(missing.namespace, "default");
        assert_eq!(missing.warnings.len(), 1);
    }
}
