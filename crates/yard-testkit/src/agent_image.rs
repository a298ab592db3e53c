//! Images for tests built on Debian: the agent image (git and cargo, and a
//! scripted agent in place of a model) and an echo stack for the router.
//!
//! The base is a `debootstrap --variant=minbase` root file system imported
//! as an image (about a minute, once per machine). Each program is layered
//! on top by committing a container, so changing a script does not mean
//! bootstrapping again. Builds across test processes take turns through a
//! lock file.

use std::io::Write;
use std::process::{Command, Stdio};

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::TryStreamExt;
use tokio::sync::OnceCell;
use tokio_util::io::ReaderStream;

use crate::TEST_LABEL;

/// Debian bookworm with git, cargo and a C toolchain for linking, and a
/// user `agent` (uid and gid 1000) owning the usual cache directories.
const BASE_IMAGE: &str = "agentyard-test/agent-base:2";
/// The user the test agent image runs as, as `USER` names it.
pub const AGENT_USER: &str = "agent";
/// Its uid and gid.
pub const AGENT_UID: u32 = 1000;

/// The scripted agent. It runs `$YARD_TASK` as a shell script in
/// `/workspace`, where `bash_tool CMD` and `write_tool PATH TEXT` ask the
/// yard first, through `yard hook`, and only act when allowed, as a real
/// agent's client does; `guidance MESSAGE` calls the yard's MCP tool
/// `request_guidance` through `yard mcp` (stdio, as a client starts it) and
/// prints the tool's answer line.
const SCRIPTED_AGENT: &str = r#"#!/bin/sh
set -u
cd /workspace
session="scripted-$YARD_AGENT_ID"
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
hook() {
  printf '{"hook_event_name":"%s","session_id":"%s","cwd":"/workspace","tool_name":"%s","tool_input":%s}' \
    "$1" "$session" "$2" "$3" | yard hook
}
allowed() {
  case "$1" in
    *'"permissionDecision":"allow"'*) return 0 ;;
    *) return 1 ;;
  esac
}
bash_tool() {
  input="{\"command\":\"$(escape "$1")\"}"
  answer=$(hook PreToolUse Bash "$input")
  if allowed "$answer"; then
    sh -c "$1"
    hook PostToolUse Bash "$input" >/dev/null
  else
    echo "denied: $1"
  fi
}
write_tool() {
  input="{\"file_path\":\"$(escape "/workspace/$1")\",\"content\":\"$(escape "$2")\"}"
  answer=$(hook PreToolUse Write "$input")
  if allowed "$answer"; then
    printf '%s\n' "$2" > "$1"
  else
    echo "denied: write $1"
  fi
}
guidance() {
  dir=$(mktemp -d)
  mkfifo "$dir/in"
  yard mcp <"$dir/in" >"$dir/out" 2>"$dir/err" &
  bridge=$!
  exec 3>"$dir/in"
  printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"scripted-agent","version":"1"}}}' >&3
  until grep -q '"id":1' "$dir/out" || ! kill -0 $bridge 2>/dev/null; do sleep 0.1; done
  printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/initialized"}' >&3
  printf '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"request_guidance","arguments":{"message":"%s"}}}\n' "$(escape "$1")" >&3
  until grep -q '"id":2' "$dir/out" || ! kill -0 $bridge 2>/dev/null; do sleep 0.2; done
  exec 3>&-
  kill $bridge 2>/dev/null
  grep '"id":2' "$dir/out" || cat "$dir/err" >&2
  rm -rf "$dir"
}
hook SessionStart "" '{}' >/dev/null
eval "$YARD_TASK"
status=$?
hook Stop "" '{}' >/dev/null
exit $status
"#;

/// A stack on port 8080 that answers each HTTP request with its method,
/// path and body, and echoes WebSocket messages; in Perl, which git brings
/// into the base image.
const HTTP_ECHO: &str = include_str!("../images/http-echo.pl");

/// A program to layer on the base image.
struct Layer {
    repo: &'static str,
    path: &'static str,
    script: &'static str,
    cmd: Vec<String>,
    exposed_port: Option<&'static str>,
    /// The image's `USER`; root when `None`.
    user: Option<&'static str>,
}

static AGENT: OnceCell<String> = OnceCell::const_new();
static ECHO: OnceCell<String> = OnceCell::const_new();

/// The name of the test agent image, built if it is not on the engine.
pub async fn ensure_agent_image() -> String {
    AGENT
        .get_or_init(|| {
            ensure_layered(Layer {
                repo: "agentyard-test/agent",
                path: "usr/local/bin/scripted-agent",
                script: SCRIPTED_AGENT,
                cmd: vec!["/usr/local/bin/scripted-agent".to_owned()],
                exposed_port: None,
                user: Some(AGENT_USER),
            })
        })
        .await
        .clone()
}

/// The name of the echo stack image (HTTP requests and WebSocket
/// messages), built if it is not on the engine.
pub async fn ensure_http_echo_image() -> String {
    ECHO.get_or_init(|| {
        ensure_layered(Layer {
            repo: "agentyard-test/http-echo",
            path: "usr/local/bin/http-echo",
            script: HTTP_ECHO,
            cmd: vec!["perl".to_owned(), "/usr/local/bin/http-echo".to_owned()],
            exposed_port: Some("8080/tcp"),
            user: None,
        })
    })
    .await
    .clone()
}

/// The image of `layer` on the base, named after what its script does;
/// built (and the base with it) if it is not on the engine.
async fn ensure_layered(layer: Layer) -> String {
    let lock = std::fs::File::create(std::env::temp_dir().join("agentyard-test-images.lock"))
        .expect("the image lock file");
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .expect("the lock task")
        .expect("locking the image lock file");
    let docker = Docker::connect_with_defaults().expect("a Docker client");
    if docker.inspect_image(BASE_IMAGE).await.is_err() {
        build_base(&docker).await;
    }
    let what = format!("{}{:?}", layer.script, layer.user);
    let digest = &format!("{:x}", fnv(what.as_bytes()))[..8];
    let image = format!("{}:{digest}", layer.repo);
    if docker.inspect_image(&image).await.is_err() {
        build_layer(&docker, &image, &layer).await;
    }
    drop(lock);
    image
}

/// A stable hash of the script, to name the image after what it does.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn build_base(docker: &Docker) {
    let mirror = std::env::var("YARD_TEST_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
    let root = tempfile::Builder::new()
        .prefix("yard-agent-rootfs-")
        .tempdir()
        .expect("a temporary directory");
    let rootfs = root.path().join("rootfs");
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=git,cargo,libc6-dev,ca-certificates",
            "bookworm",
        ])
        .arg(&rootfs)
        .arg(&mirror)
        .stdout(Stdio::null())
        .status()
        .expect("debootstrap (apt-get install debootstrap; it runs as root)");
    assert!(status.success(), "debootstrap failed");
    // A user for agents, owning the caches they share (a named volume takes
    // the owner of the directory it is first mounted on).
    let status = Command::new("chroot")
        .arg(&rootfs)
        .args(["useradd", "--create-home", "--uid", "1000", "--user-group"])
        .arg(AGENT_USER)
        .status()
        .expect("chroot useradd");
    assert!(status.success(), "useradd in the agent base failed");
    for cache in ["cargo", "npm", "pip"] {
        let dir = rootfs.join("cache").join(cache);
        std::fs::create_dir_all(&dir).expect("a cache directory");
        std::os::unix::fs::chown(&dir, Some(AGENT_UID), Some(AGENT_UID)).expect("chown");
    }
    for trimmed in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let _ = std::fs::remove_dir_all(rootfs.join(trimmed));
    }
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let stdout = tar.stdout.take().expect("tar's output");
    let (repo, tag) = BASE_IMAGE.split_once(':').expect("tagged");
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ])
        .build();
    docker
        .create_image(
            Some(options),
            Some(bollard::body_try_stream(ReaderStream::new(stdout))),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .expect("importing the agent base image");
    assert!(tar.wait().await.expect("tar").success(), "tar failed");
}

/// Commits a never-started container of the base with the script in it;
/// the image keeps the container's command, exposed port and user.
async fn build_layer(docker: &Docker, image: &str, layer: &Layer) {
    let name = format!("agentyard-test-build-{}", uuid::Uuid::new_v4().simple());
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(BASE_IMAGE.to_owned()),
                cmd: Some(layer.cmd.clone()),
                exposed_ports: layer.exposed_port.map(|port| vec![port.to_owned()]),
                user: layer.user.map(str::to_owned),
                labels: Some([(TEST_LABEL.to_owned(), "image-build".to_owned())].into()),
                ..Default::default()
            },
        )
        .await
        .expect("a build container");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o755);
    header.set_size(layer.script.len() as u64);
    archive
        .append_data(&mut header, layer.path, layer.script.as_bytes())
        .expect("tar");
    let mut bytes = archive.into_inner().expect("tar");
    bytes.flush().expect("tar");
    let uploaded = docker
        .upload_to_container(
            &name,
            Some(UploadToContainerOptionsBuilder::new().path("/").build()),
            bollard::body_full(bytes.into()),
        )
        .await;
    let (repo, tag) = image.split_once(':').expect("tagged");
    let committed = match uploaded {
        Ok(()) => docker
            .commit_container(
                CommitContainerOptionsBuilder::new()
                    .container(&name)
                    .repo(repo)
                    .tag(tag)
                    .build(),
                ContainerConfig::default(),
            )
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    let force = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = docker.remove_container(&name, Some(force)).await;
    committed.unwrap_or_else(|e| panic!("committing {image}: {e}"));
}
