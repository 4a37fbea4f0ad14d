//! Where a Blender is reached: host and port of its addon (or of this project's headless
//! server). Plain data that a session record stores and every backend understands.

/// Where a Blender addon listens.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Target {
    /// Host name or IP address (IPv4 is preferred: the addon binds IPv4 only).
    pub host: String,
    /// TCP port (the addon's default is 9876).
    pub port: u16,
}

impl Target {
    /// A target from host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Target {
            host: host.into(),
            port,
        }
    }

    /// Whether the target is this machine (files Blender writes can be read here).
    pub fn is_local(&self) -> bool {
        let h = self.host.trim_matches(['[', ']']);
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_targets() {
        for host in [
            "127.0.0.1",
            "127.0.0.2",
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
        ] {
            assert!(Target::new(host, 1).is_local(), "{host}");
        }
        for host in ["192.168.1.100", "blender-box", "10.0.0.5"] {
            assert!(!Target::new(host, 1).is_local(), "{host}");
        }
        assert_eq!(Target::new("::1", 9876).to_string(), "[::1]:9876");
        assert_eq!(Target::new("127.0.0.1", 9876).to_string(), "127.0.0.1:9876");
    }
}
