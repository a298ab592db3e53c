//! Which user an image runs its processes as, in numbers.
//!
//! An image names its user by name or number (`USER node`, `USER 1000:1000`).
//! The yard gives each agent a checkout owned by that user, so it needs the
//! numbers: a name is looked up in the image's own `/etc/passwd` (and
//! `/etc/group`), read from a container that is created for the purpose,
//! never started, and removed at once. Answers are kept per image id, so a
//! spawn costs one inspection once the image is known.

use std::collections::HashMap;
use std::io::Read;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::TryStreamExt;

use super::{DockerEngine, backend, status};
use crate::{EngineError, LABEL_INSTANCE, UserIds};

/// Label on the short-lived containers that read an image's users.
const LABEL_PROBE: &str = "agentyard.probe";

/// A user and group as an image's `USER` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserSpec {
    user: String,
    group: Option<String>,
}

impl UserSpec {
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let (user, group) = match raw.split_once(':') {
            Some((user, group)) => (user, Some(group.to_owned())),
            None => (raw, None),
        };
        Some(Self {
            user: user.to_owned(),
            group: group.filter(|g| !g.is_empty()),
        })
    }
}

/// The uid and primary gid of `user` (a name or a number) in a passwd file.
fn find_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        (*name == user || *uid == user).then(|| Some((uid.parse().ok()?, gid.parse().ok()?)))?
    })
}

/// The gid of `group` (a name or a number) in a group file.
fn find_group(groups: &str, group: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (name, gid) = (fields.first()?, fields.get(2)?);
        (*name == group || *gid == group).then(|| gid.parse().ok())?
    })
}

impl DockerEngine {
    pub(super) async fn resolve_image_user(
        &self,
        image: &str,
    ) -> Result<Option<UserIds>, EngineError> {
        let inspected = match self.docker.inspect_image(image).await {
            Ok(inspected) => inspected,
            Err(e) if status(&e) == Some(404) => {
                return Err(EngineError::ImageNotFound {
                    image: image.to_owned(),
                });
            }
            Err(e) => return Err(backend("inspecting the agent image", e)),
        };
        let key = inspected.id.clone().unwrap_or_else(|| image.to_owned());
        let mut known = self.image_users.lock().await;
        if let Some(user) = known.get(&key) {
            return Ok(*user);
        }
        let declared = inspected.config.and_then(|c| c.user).unwrap_or_default();
        let resolved = self.numeric_user(image, &declared).await?;
        known.insert(key, resolved);
        Ok(resolved)
    }

    async fn numeric_user(
        &self,
        image: &str,
        declared: &str,
    ) -> Result<Option<UserIds>, EngineError> {
        let Some(spec) = UserSpec::parse(declared) else {
            return Ok(None);
        };
        let unknown = || EngineError::UnknownImageUser {
            image: image.to_owned(),
            user: declared.to_owned(),
        };
        let numeric_uid = spec.user.parse::<u32>().ok();
        let numeric_gid = spec.group.as_deref().and_then(|g| g.parse::<u32>().ok());
        let ids = match (numeric_uid, &spec.group, numeric_gid) {
            (Some(uid), Some(_), Some(gid)) => UserIds { uid, gid },
            _ => {
                let files = self
                    .image_files(image, &["/etc/passwd", "/etc/group"])
                    .await?;
                let passwd = files.get("passwd").map_or("", String::as_str);
                let groups = files.get("group").map_or("", String::as_str);
                let (uid, primary) = match (find_user(passwd, &spec.user), numeric_uid) {
                    (Some(found), _) => found,
                    // A uid that passwd does not list runs with group 0,
                    // unless a group is named.
                    (None, Some(uid)) => (uid, 0),
                    (None, None) => return Err(unknown()),
                };
                let gid = match &spec.group {
                    None => primary,
                    Some(group) => find_group(groups, group)
                        .or(group.parse().ok())
                        .ok_or_else(unknown)?,
                };
                UserIds { uid, gid }
            }
        };
        Ok((ids.uid != 0).then_some(ids))
    }

    /// The text of `paths` in `image`, by file name; missing files are left
    /// out. The container that holds them is labelled as this instance's
    /// probe; one a crash left behind is removed by the next look.
    async fn image_files(
        &self,
        image: &str,
        paths: &[&str],
    ) -> Result<HashMap<String, String>, EngineError> {
        let mut labels = self.base_labels();
        labels.insert(LABEL_INSTANCE.to_owned(), self.config.instance.clone());
        labels.insert(LABEL_PROBE.to_owned(), "true".to_owned());
        let leftovers = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_INSTANCE}={}", self.config.instance),
                format!("{LABEL_PROBE}=true"),
            ],
        )]);
        for leftover in self
            .containers(&leftovers, "listing probe containers")
            .await?
        {
            if let Some(id) = leftover.id {
                self.remove_probe(&id).await;
            }
        }
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            // Never run; an image without a command still needs one.
            cmd: Some(vec!["/nonexistent".to_owned()]),
            labels: Some(labels),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(|e| backend("reading the image's users", e))?;
        let mut files = HashMap::new();
        for path in paths {
            let options = DownloadFromContainerOptionsBuilder::new()
                .path(path)
                .build();
            let archive: Vec<u8> = match self
                .docker
                .download_from_container(&created.id, Some(options))
                .map_ok(|chunk| chunk.to_vec())
                .try_concat()
                .await
            {
                Ok(archive) => archive,
                Err(e) if status(&e) == Some(404) => continue,
                Err(e) => {
                    self.remove_probe(&created.id).await;
                    return Err(backend("reading the image's users", e));
                }
            };
            let mut tar = tar::Archive::new(archive.as_slice());
            let entries = tar.entries().map_err(|e| EngineError::Backend {
                operation: "reading the image's users",
                message: e.to_string(),
            })?;
            if let Some(Ok(mut entry)) = entries.into_iter().next() {
                let mut text = String::new();
                if entry.read_to_string(&mut text).is_ok() {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    files.insert(name.to_owned(), text);
                }
            }
        }
        self.remove_probe(&created.id).await;
        Ok(files)
    }

    async fn remove_probe(&self, id: &str) {
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = self.docker.remove_container(id, Some(force)).await {
            tracing::warn!(container = %id, error = %e, "cannot remove the container that read an image's users");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nnode:x:1000:1000::/home/node:/bin/bash\nagent:x:1001:1002::/home/agent:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnode:x:1000:\nstaff:x:50:\n";

    #[test]
    fn users_and_groups_are_found_by_name_or_number() {
        assert_eq!(find_user(PASSWD, "node"), Some((1000, 1000)));
        assert_eq!(find_user(PASSWD, "1001"), Some((1001, 1002)));
        assert_eq!(find_user(PASSWD, "nobody"), None);
        assert_eq!(find_group(GROUP, "staff"), Some(50));
        assert_eq!(find_group(GROUP, "0"), Some(0));
        assert_eq!(
            UserSpec::parse("node:staff"),
            Some(UserSpec {
                user: "node".to_owned(),
                group: Some("staff".to_owned())
            })
        );
        assert_eq!(UserSpec::parse(" "), None);
    }
}
