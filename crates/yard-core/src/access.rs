//! Who may do what: roles, owners, and the caller of a request.
//!
//! Things a person makes (stacks, agents) belong to an [`Owner`]: the
//! identity of the person's token, not its name. A token's name is only a
//! label for people to read; a new token that reuses a revoked token's name
//! owns nothing of the old one's, unless an admin says it takes over (then
//! it carries the old owner id). Names are compared case-insensitively, so
//! `Bob` and `bob` are one person.

use crate::Agent;

/// What a person's token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including managing tokens and every person's things.
    Admin,
    /// Deploy stacks and spawn agents, and manage their own.
    User,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(format!("{other:?} is not a role (admin or user)")),
        }
    }
}

/// Whose a stack or an agent is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The owner identity of the token that made it; stable across an
    /// admin-approved reissue, never reused otherwise.
    pub id: String,
    /// The token's name when it was made, for people to read.
    pub name: String,
}

/// A person: the owner identity and role of the token they presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub owner: Owner,
    pub role: Role,
}

impl Person {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this person may act on something owned by `owner`: their
    /// own things, or anything for an admin. Things without a recorded
    /// owner (made before owners were recorded) are the admins'.
    pub fn may_manage(&self, owner: Option<&Owner>) -> bool {
        self.is_admin() || owner.is_some_and(|o| o.id == self.owner.id)
    }
}

/// Who is asking: a person, or a running agent with its own credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Person(Person),
    Agent(Box<Agent>),
}

impl Actor {
    /// The owner of what this actor makes: the person, or the person who
    /// spawned the agent (agents spawned by agents inherit it).
    pub fn owner(&self) -> Option<&Owner> {
        match self {
            Self::Person(person) => Some(&person.owner),
            Self::Agent(agent) => agent.owner.as_ref(),
        }
    }

    /// Whether this is an admin's token.
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Person(person) if person.is_admin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, role: Role) -> Person {
        Person {
            owner: Owner {
                id: id.to_owned(),
                name: format!("name-of-{id}"),
            },
            role,
        }
    }

    #[test]
    fn people_manage_their_own_and_admins_everything() {
        let alice = person("a1", Role::User);
        let admin = person("x9", Role::Admin);
        let alices = Owner {
            id: "a1".to_owned(),
            name: "alice".to_owned(),
        };
        let bobs = Owner {
            id: "b2".to_owned(),
            // The same name does not make the same owner.
            name: "name-of-a1".to_owned(),
        };
        assert!(alice.may_manage(Some(&alices)));
        assert!(!alice.may_manage(Some(&bobs)));
        assert!(!alice.may_manage(None), "ownerless things are the admins'");
        assert!(admin.may_manage(Some(&bobs)) && admin.may_manage(None));
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::User] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
