//! The policy: rules that turn an agent's hook event into allow, deny or ask.
//!
//! A policy is a TOML document. Rules are tried in order and the first that
//! matches decides; when none does, tool events get the policy's default and
//! every other event is allowed (a default of `deny` must not stop an agent
//! from ending its session). `ask` means "a person decides": the tool call
//! waits for a person's answer, and `ask_fallback` applies when nobody
//! answers by the deadline, or at once when `ask_people = false`.
//!
//! ```toml
//! default = "allow"
//! ask_fallback = "deny"
//! ask_people = true             # false: `ask` is the fallback, at once
//!
//! [[rules]]
//! name = "no-force-push"
//! event = "PreToolUse"          # optional: any event when absent
//! tool = "Bash"                 # optional glob on the tool name
//! command = "git push*--force*" # optional glob on tool_input.command
//! decision = "deny"
//! reason = "Force pushes rewrite shared history."
//! ```
//!
//! Agents spawn no agents of their own unless the policy says how many:
//!
//! ```toml
//! [agents]
//! may_spawn = 2   # children per agent, over its life; 0 by default
//! ```
//!
//! In globs `*` matches any run of characters, `/` included; `?` one
//! character; `[abc]` a class; `{a,b}` alternatives.

use std::fmt;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::hook::HookEvent;

/// What a rule (or the default) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Ask,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Ask => "ask",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `ask` becomes while no person can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    Allow,
    Deny,
}

/// The facts of one hook event that rules can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookFacts<'a> {
    pub event: HookEvent,
    pub tool: Option<&'a str>,
    /// `tool_input.command`, for shell tools.
    pub command: Option<&'a str>,
    /// `tool_input.file_path` or `tool_input.path`, for file tools.
    pub path: Option<&'a str>,
}

/// The policy's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What the agent is told: never `Ask`. When `person` is set, this is
    /// the fallback, told only if nobody answers in time.
    pub decision: Decision,
    /// The rule said `ask`.
    pub asked: bool,
    /// The rule said `ask` and a person is to be asked (`ask_people`);
    /// otherwise the fallback decided at once.
    pub person: bool,
    /// Which rule decided: its name, `rule N` for unnamed ones, or `default`.
    pub rule: String,
    /// Why, for the agent and the audit log.
    pub reason: String,
}

/// A policy file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default = "default_allow")]
    default: Decision,
    #[serde(default = "fallback_deny")]
    ask_fallback: Fallback,
    #[serde(default = "ask_people")]
    ask_people: bool,
    #[serde(default)]
    rules: Vec<RuleFile>,
    #[serde(default)]
    agents: AgentsFile,
}

/// `[agents]`: what agents may do with their own credential.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    /// How many children each agent may spawn over its life.
    #[serde(default)]
    may_spawn: u32,
}

fn ask_people() -> bool {
    true
}

fn default_allow() -> Decision {
    Decision::Allow
}

fn fallback_deny() -> Fallback {
    Fallback::Deny
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    event: Option<String>,
    tool: Option<String>,
    command: Option<String>,
    path: Option<String>,
    decision: Decision,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    label: String,
    event: Option<HookEvent>,
    tool: Option<GlobMatcher>,
    command: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
    decision: Decision,
    reason: Option<String>,
}

impl Rule {
    fn matches(&self, facts: &HookFacts<'_>) -> bool {
        fn glob(matcher: Option<&GlobMatcher>, value: Option<&str>) -> bool {
            match matcher {
                None => true,
                Some(m) => value.is_some_and(|v| m.is_match(v)),
            }
        }
        self.event.is_none_or(|e| e == facts.event)
            && glob(self.tool.as_ref(), facts.tool)
            && glob(self.command.as_ref(), facts.command)
            && glob(self.path.as_ref(), facts.path)
    }
}

/// A parsed, ready-to-evaluate policy.
#[derive(Debug, Clone)]
pub struct Policy {
    default: Decision,
    ask_fallback: Fallback,
    ask_people: bool,
    rules: Vec<Rule>,
    may_spawn: u32,
}

impl Default for Policy {
    /// Allows everything; `ask` asks a person and falls back to deny.
    fn default() -> Self {
        Self {
            default: Decision::Allow,
            ask_fallback: Fallback::Deny,
            ask_people: true,
            rules: Vec::new(),
            may_spawn: 0,
        }
    }
}

impl Policy {
    /// Parses a policy document; every mistake is reported with the rule it
    /// is in.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                let label = rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("rule {}", index + 1));
                let at =
                    |what: &str, e: &dyn fmt::Display| PolicyError(format!("{label}: {what}: {e}"));
                let event = rule
                    .event
                    .as_deref()
                    .map(|e| e.parse::<HookEvent>().map_err(|err| at("event", &err)))
                    .transpose()?;
                let compile = |what: &str, pattern: Option<&str>| {
                    pattern
                        .map(|p| {
                            Glob::new(p)
                                .map(|g| g.compile_matcher())
                                .map_err(|e| at(what, &e))
                        })
                        .transpose()
                };
                Ok(Rule {
                    event,
                    tool: compile("tool", rule.tool.as_deref())?,
                    command: compile("command", rule.command.as_deref())?,
                    path: compile("path", rule.path.as_deref())?,
                    decision: rule.decision,
                    reason: rule.reason,
                    label,
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        Ok(Self {
            default: file.default,
            ask_fallback: file.ask_fallback,
            ask_people: file.ask_people,
            rules,
            may_spawn: file.agents.may_spawn,
        })
    }

    /// How many agents one agent may spawn with its own credential, over
    /// its whole life (`[agents] may_spawn`; none unless the policy says).
    pub fn may_spawn(&self) -> u32 {
        self.may_spawn
    }

    /// How many rules the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Decides one event. For `ask`, the verdict carries the fallback and
    /// says whether a person is to be asked first.
    pub fn evaluate(&self, facts: &HookFacts<'_>) -> Verdict {
        let (decision, rule, reason) = match self.rules.iter().find(|r| r.matches(facts)) {
            Some(rule) => (
                rule.decision,
                rule.label.clone(),
                rule.reason.clone().unwrap_or_else(|| match rule.decision {
                    Decision::Ask => format!("The policy ({}) asks a person.", rule.label),
                    decision => format!("{decision} by policy rule {}", rule.label),
                }),
            ),
            None if facts.event.is_tool_gate() => (
                self.default,
                "default".to_owned(),
                format!("{} by the policy default", self.default),
            ),
            None => (
                Decision::Allow,
                "default".to_owned(),
                "not a tool event".to_owned(),
            ),
        };
        if decision != Decision::Ask {
            return Verdict {
                decision,
                asked: false,
                person: false,
                rule,
                reason,
            };
        }
        let fallback = match self.ask_fallback {
            Fallback::Allow => Decision::Allow,
            Fallback::Deny => Decision::Deny,
        };
        if self.ask_people {
            return Verdict {
                decision: fallback,
                asked: true,
                person: true,
                reason,
                rule,
            };
        }
        Verdict {
            decision: fallback,
            asked: true,
            person: false,
            reason: format!(
                "{reason} (the policy asks no person, so the fallback {fallback} applies)"
            ),
            rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(command: &str) -> HookFacts<'_> {
        HookFacts {
            event: HookEvent::PreToolUse,
            tool: Some("Bash"),
            command: Some(command),
            path: None,
        }
    }

    const POLICY: &str = r#"
        default = "allow"
        ask_fallback = "deny"

        [[rules]]
        name = "no-rm-root"
        tool = "Bash"
        command = "rm -rf /*"
        decision = "deny"
        reason = "Removing the root file system is not allowed."

        [[rules]]
        event = "PreToolUse"
        tool = "{Write,Edit}"
        path = "/etc/**"
        decision = "ask"

        [[rules]]
        tool = "mcp__*"
        decision = "deny"
    "#;

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(POLICY).unwrap();
        assert_eq!(policy.rule_count(), 3);
        let denied = policy.evaluate(&bash("rm -rf /workspace"));
        assert_eq!(denied.decision, Decision::Deny);
        assert_eq!(denied.rule, "no-rm-root");
        assert_eq!(
            denied.reason,
            "Removing the root file system is not allowed."
        );
        let allowed = policy.evaluate(&bash("ls -la"));
        assert_eq!(
            (allowed.decision, allowed.rule.as_str()),
            (Decision::Allow, "default")
        );
        let mcp = policy.evaluate(&HookFacts {
            event: HookEvent::PreToolUse,
            tool: Some("mcp__yard__deploy_stack"),
            command: None,
            path: None,
        });
        assert_eq!(
            (mcp.decision, mcp.rule.as_str()),
            (Decision::Deny, "rule 3")
        );
    }

    #[test]
    fn ask_asks_a_person_with_the_fallback_for_no_answer_unless_the_policy_says_not_to() {
        let policy = Policy::parse(POLICY).unwrap();
        let write = HookFacts {
            event: HookEvent::PreToolUse,
            tool: Some("Write"),
            command: None,
            path: Some("/etc/passwd"),
        };
        let verdict = policy.evaluate(&write);
        assert_eq!(
            (verdict.decision, verdict.asked, verdict.person),
            (Decision::Deny, true, true)
        );
        let at_once = Policy::parse(&format!("ask_people = false\n{POLICY}")).unwrap();
        let verdict = at_once.evaluate(&write);
        assert_eq!(
            (verdict.decision, verdict.asked, verdict.person),
            (Decision::Deny, true, false)
        );
        assert!(
            verdict.reason.contains("fallback deny"),
            "{}",
            verdict.reason
        );
        let elsewhere = HookFacts {
            path: Some("/workspace/etc/x"),
            ..write
        };
        assert_eq!(policy.evaluate(&elsewhere).decision, Decision::Allow);
    }

    #[test]
    fn a_deny_default_never_blocks_non_tool_events() {
        let policy = Policy::parse("default = \"deny\"").unwrap();
        assert_eq!(policy.evaluate(&bash("ls")).decision, Decision::Deny);
        let stop = HookFacts {
            event: HookEvent::Stop,
            tool: None,
            command: None,
            path: None,
        };
        assert_eq!(policy.evaluate(&stop).decision, Decision::Allow);
    }

    #[test]
    fn mistakes_are_reported_with_their_rule() {
        let cases = [
            ("default = \"maybe\"", "unknown variant"),
            (
                "[[rules]]\ndecision = \"deny\"\ncommand = \"[\"",
                "rule 1: command",
            ),
            (
                "[[rules]]\nname = \"x\"\nevent = \"PreToolUze\"\ndecision = \"deny\"",
                "x: event",
            ),
            (
                "[[rules]]\ndecision = \"deny\"\ncomand = \"ls\"",
                "unknown field",
            ),
            ("[[rules]]\ntool = \"Bash\"", "missing field `decision`"),
            ("default = ", "expected"),
        ];
        for (text, expected) in cases {
            let err = Policy::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn an_empty_policy_allows_everything_but_spawning() {
        let policy = Policy::parse("").unwrap();
        assert_eq!(policy.evaluate(&bash("anything")).decision, Decision::Allow);
        assert_eq!(policy.may_spawn(), 0);
        let spawning = Policy::parse("[agents]\nmay_spawn = 3\n").unwrap();
        assert_eq!(spawning.may_spawn(), 3);
        assert!(Policy::parse("[agents]\nmay_spawn = -1\n").is_err());
        assert!(Policy::parse("[agents]\nmay_spwan = 1\n").is_err());
    }
}
