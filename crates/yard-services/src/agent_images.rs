//! Which images people's agents may run (`YARD_AGENT_IMAGES`).
//!
//! Any image on the engine could otherwise run as an agent, with a checkout
//! of someone's repository mounted: a plain shell image would do to read it
//! all. Users and agents get the images the operator lists (globs, by
//! default only the yard's agent image); admins may run any local image.

use globset::{Glob, GlobMatcher};
use yard_core::ImageRef;

/// The images users may run.
#[derive(Debug, Clone)]
pub struct AgentImages {
    patterns: Vec<(String, GlobMatcher)>,
}

impl AgentImages {
    /// `patterns` are globs on image references, e.g. `agentyard/agent:*`.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.trim();
                Glob::new(p)
                    .map(|g| (p.to_owned(), g.compile_matcher()))
                    .map_err(|e| format!("{p:?} is not an image glob: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether users may run `image`, as written or as the engine reads it
    /// (`name` is `name:latest`).
    pub fn allows(&self, image: &ImageRef) -> bool {
        let normalized = image.normalized();
        self.patterns
            .iter()
            .any(|(_, m)| m.is_match(image.as_str()) || m.is_match(&normalized))
    }

    /// The patterns, for messages.
    pub fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_match_as_written_or_as_the_engine_reads_them() {
        let images =
            AgentImages::new(&["agentyard/agent:latest".to_owned(), "team/*:v*".to_owned()])
                .unwrap();
        let image = |raw: &str| ImageRef::parse(raw).unwrap();
        assert!(images.allows(&image("agentyard/agent")));
        assert!(images.allows(&image("agentyard/agent:latest")));
        assert!(images.allows(&image("team/rust:v2")));
        assert!(!images.allows(&image("agentyard/agent:dev")));
        assert!(!images.allows(&image("busybox")));
        assert!(AgentImages::new(&["[".to_owned()]).is_err());
    }
}
