//! The deployment files under `deploy/`, checked without building an image
//! (CI has no registry to pull base images from): Swarm and Compose accept
//! the two compose files and render what production relies on (rolling
//! updates that start the new task first and roll back, health checks,
//! PostgreSQL up before the yard, no password written into the files), and
//! the Dockerfiles keep their health checks, the verified Gitea download and
//! COPY sources that exist in their build contexts.
//!
//! Needs a Docker CLI with `docker stack config` and Debian's
//! `docker-compose`; neither needs a running engine. A missing tool fails
//! the test and says which package to install.

#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    let full = root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// Variables the compose files interpolate, removed so that the caller's
/// environment cannot change what is checked.
const INTERPOLATED: &[&str] = &["POSTGRES_PASSWORD", "YARD_DOMAIN"];

/// Runs `program` from the repository root with `env` set and the
/// interpolated variables otherwise unset; a missing program fails with the
/// package that brings it.
fn run(program: &str, package: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command.current_dir(root()).args(args);
    for name in INTERPOLATED {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed; these tests need it: \
             apt-get install {package}"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `docker-compose` (Debian's, 1.29) with no `.env` file: only `env` counts.
fn compose_config(file: &str, env: &[(&str, &str)]) -> Output {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let env_file = empty.path().to_str().unwrap().to_owned();
    run(
        "docker-compose",
        "docker-compose",
        &["--env-file", &env_file, "-f", file, "config"],
        env,
    )
}

/// The rendered file, or a failure with what the tool said.
fn accepted(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} refused the file ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// The lines nested under the first line that is exactly `header` (e.g.
/// `"  yard:"`): every following line indented deeper (or a list item at
/// the same depth, as docker-compose writes them), up to the next one that
/// is not.
fn section(rendered: &str, header: &str) -> String {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut lines = rendered.lines().skip_while(|line| *line != header);
    assert!(
        lines.next().is_some(),
        "no `{header}` in the rendered file:\n{rendered}"
    );
    let depth = indent(header);
    lines
        .take_while(|line| {
            line.trim().is_empty()
                || indent(line) > depth
                || (indent(line) == depth && line.trim_start().starts_with("- "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_has(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected `{needle}` in:\n{haystack}"
    );
}

#[test]
fn swarm_stack_file_is_accepted_and_rolls_out_safely() {
    let output = run(
        "docker",
        "docker-ce-cli (or another Docker CLI with `docker stack config`)",
        &["stack", "config", "-c", "deploy/swarm.yml"],
        &[],
    );
    let stderr = text(&output.stderr);
    if !output.status.success() && stderr.contains("unknown") {
        let version = run("docker", "docker.io", &["--version"], &[]);
        panic!(
            "this Docker CLI ({}) has no `docker stack config` (Docker 23.0 and later have it; \
             Debian bookworm's docker.io 20.10 does not): install a newer Docker CLI\n{stderr}",
            text(&version.stdout).trim()
        );
    }
    let rendered = accepted("docker stack config", output);

    let yard = section(&rendered, "  yard:");
    assert_has(&yard, "replicas: 1", "one yard");
    let update = section(&yard, "      update_config:");
    assert_has(
        &update,
        "order: start-first",
        "updates start the new yard first",
    );
    assert_has(
        &update,
        "failure_action: rollback",
        "a failed update rolls back",
    );
    assert_has(&update, "monitor:", "an update is watched before it counts");
    let rollback = section(&yard, "      rollback_config:");
    assert_has(&rollback, "order:", "rollbacks say how they go");
    let restart = section(&yard, "      restart_policy:");
    for key in [
        "condition: on-failure",
        "delay:",
        "max_attempts:",
        "window:",
    ] {
        assert_has(&restart, key, "the yard's restart policy");
    }
    assert_has(
        &yard,
        "- node.role == manager",
        "the yard runs on a manager",
    );
    assert_has(
        &yard,
        "target: /var/run/docker.sock",
        "the yard has the socket",
    );
    let health = section(&yard, "    healthcheck:");
    assert_has(
        &health,
        "- health",
        "the yard's health check is `yard health`",
    );
    assert_has(&health, "start_period:", "the yard gets time to start");
    assert_has(
        &yard,
        "YARD_BACKEND: swarm",
        "the yard uses the swarm backend",
    );
    // `$$` in the file is a literal `$` for the shell that reads the secret.
    assert_has(
        &yard,
        "$(cat /run/secrets/yard_postgres_password)",
        "the database password comes from the secret",
    );
    assert_has(
        &yard,
        "exec yard serve",
        "the yard is the process tini runs",
    );

    let postgres = section(&rendered, "  postgres:");
    assert_has(&postgres, "pg_isready", "PostgreSQL's health check");
    assert_has(
        &postgres,
        "POSTGRES_PASSWORD_FILE: /run/secrets/yard_postgres_password",
        "PostgreSQL reads the secret",
    );
    assert_has(
        &section(&postgres, "      update_config:"),
        "order: stop-first",
        "one PostgreSQL on its data at a time",
    );

    let secrets = section(&rendered, "secrets:");
    assert_eq!(
        secrets.matches("external: true").count(),
        2,
        "both secrets are made outside the file:\n{secrets}"
    );
    assert_has(
        &section(&rendered, "networks:"),
        "driver: overlay",
        "an overlay network",
    );
    assert!(
        !rendered.contains("POSTGRES_PASSWORD:"),
        "no password in the stack's definition:\n{rendered}"
    );

    // Debian's docker-compose validates the same file against the schema.
    accepted(
        "docker-compose config (deploy/swarm.yml)",
        compose_config("deploy/swarm.yml", &[]),
    );
}

#[test]
fn aio_compose_file_is_accepted_and_needs_a_password() {
    let password = "0123456789abcdef";
    let rendered = accepted(
        "docker-compose config",
        compose_config("deploy/compose.aio.yml", &[("POSTGRES_PASSWORD", password)]),
    );

    let yard = section(&rendered, "  yard:");
    assert_has(&yard, "image: agentyard/aio:latest", "the aio image");
    assert_has(
        &yard,
        "dockerfile: deploy/aio/Dockerfile",
        "built from its Dockerfile",
    );
    assert_has(
        &section(&yard, "    depends_on:"),
        "condition: service_healthy",
        "the yard waits for a healthy PostgreSQL",
    );
    assert_has(
        &yard,
        &format!("YARD_DATABASE_URL: postgres://yard:{password}@postgres:5432/yard"),
        "the yard's store is the PostgreSQL service",
    );
    assert_has(
        &section(&yard, "    healthcheck:"),
        "- health",
        "the yard's health check is `yard health`",
    );
    assert_has(
        &yard,
        "/var/run/docker.sock:/var/run/docker.sock",
        "the yard has the socket",
    );
    assert_has(
        &yard,
        "- yard-data:/data",
        "the yard's data is a named volume",
    );
    let ports = section(&yard, "    ports:");
    assert!(!ports.trim().is_empty(), "the yard publishes its ports");
    for port in ports.lines() {
        assert!(
            port.trim_start().starts_with("- 127.0.0.1:"),
            "published on loopback only: {port}"
        );
    }

    let postgres = section(&rendered, "  postgres:");
    assert_has(&postgres, "image: postgres:16", "PostgreSQL 16");
    assert_has(
        &section(&postgres, "    healthcheck:"),
        "pg_isready",
        "PostgreSQL's health check",
    );
    assert_has(
        &postgres,
        &format!("POSTGRES_PASSWORD: {password}"),
        "PostgreSQL gets the same password",
    );

    // No fixed default: without a password there is no configuration.
    let refused = compose_config("deploy/compose.aio.yml", &[]);
    assert!(
        !refused.status.success(),
        "docker-compose accepted the file without POSTGRES_PASSWORD:\n{}",
        text(&refused.stdout)
    );
    assert_has(
        &text(&refused.stderr),
        "POSTGRES_PASSWORD",
        "the refusal names the missing variable",
    );
}

/// Every Dockerfile under `deploy/`, with the build context it is built
/// from and the COPY sources that are made at build time rather than kept
/// in the repository.
const DOCKERFILES: &[(&str, &str, &[&str])] = &[
    ("deploy/aio/Dockerfile", ".", &[]),
    ("deploy/orchestrator/Dockerfile", ".", &[]),
    ("deploy/agent/Dockerfile", ".", &[]),
    (
        "deploy/agent/standalone.Dockerfile",
        "deploy/agent",
        &["yard"],
    ),
    ("deploy/stack/Dockerfile", "deploy/stack", &[]),
];

fn dockerfiles_under(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dockerfiles_under(&path, found);
        } else {
            let name = path.file_name().unwrap().to_string_lossy();
            if name == "Dockerfile" || name.ends_with(".Dockerfile") {
                let relative = path.strip_prefix(root()).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
}

/// The instructions after the last `FROM`: what the image is made of.
fn final_stage(dockerfile: &str) -> &str {
    let start = dockerfile
        .match_indices("\nFROM ")
        .last()
        .map_or(0, |(at, _)| at);
    &dockerfile[start..]
}

#[test]
fn every_dockerfile_is_known_and_copies_what_its_context_has() {
    let mut found = Vec::new();
    dockerfiles_under(&root().join("deploy"), &mut found);
    found.sort();
    let mut known: Vec<String> = DOCKERFILES.iter().map(|(f, _, _)| f.to_string()).collect();
    known.sort();
    assert_eq!(
        found, known,
        "each Dockerfile under deploy/ is listed here with its build context"
    );

    for (file, context, generated) in DOCKERFILES {
        let dockerfile = read(file);
        assert!(
            dockerfile.starts_with('#'),
            "{file} starts with a comment saying what it is"
        );
        for line in dockerfile.lines().map(str::trim) {
            let Some(copy) = line.strip_prefix("COPY ") else {
                continue;
            };
            let words: Vec<&str> = copy.split_whitespace().collect();
            if words.iter().any(|word| word.starts_with("--from=")) {
                continue;
            }
            let sources: Vec<&str> = words
                .iter()
                .copied()
                .filter(|word| !word.starts_with("--"))
                .collect();
            let (_, sources) = sources
                .split_last()
                .unwrap_or_else(|| panic!("{file}: COPY without a destination: {line}"));
            for source in sources {
                if generated.contains(source) {
                    continue;
                }
                let path = root().join(context).join(source);
                assert!(
                    path.exists(),
                    "{file}: COPY {source} is not in its build context {context}"
                );
            }
        }
    }
}

#[test]
fn yard_images_check_their_health_with_yard_health() {
    for file in ["deploy/aio/Dockerfile", "deploy/orchestrator/Dockerfile"] {
        let dockerfile = read(file);
        let image = final_stage(&dockerfile);
        let healthcheck = image
            .lines()
            .find(|line| line.starts_with("HEALTHCHECK "))
            .unwrap_or_else(|| panic!("{file}: the image has no HEALTHCHECK"));
        for part in [
            "--interval=",
            "--timeout=",
            "--start-period=",
            r#"CMD ["yard", "health"]"#,
        ] {
            assert_has(healthcheck, part, file);
        }
        assert_has(image, r#"ENTRYPOINT ["/usr/bin/tini", "--", "yard"]"#, file);
    }
}

#[test]
fn aio_image_verifies_the_gitea_it_downloads() {
    let dockerfile = read("deploy/aio/Dockerfile");
    let arg = |name: &str| -> String {
        let prefix = format!("ARG {name}=");
        dockerfile
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("deploy/aio/Dockerfile pins no {name}"))
            .trim()
            .to_owned()
    };
    let version = arg("GITEA_VERSION");
    assert!(
        version.split('.').count() == 3
            && version
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())),
        "GITEA_VERSION is a release number: {version}"
    );
    let sha = arg("GITEA_SHA256");
    assert!(
        sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "GITEA_SHA256 is a SHA-256: {sha}"
    );
    assert_has(
        &dockerfile,
        "gitea-${GITEA_VERSION}-linux-amd64",
        "the pinned release is the one downloaded",
    );
    assert_has(
        &dockerfile,
        "echo \"${GITEA_SHA256}  gitea-${GITEA_VERSION}-linux-amd64\" | sha256sum -c -",
        "the download is checked against the pinned checksum",
    );

    let image = final_stage(&dockerfile);
    for part in [
        "COPY --from=gitea /usr/local/bin/gitea /usr/local/bin/gitea",
        "COPY deploy/agent/ /usr/share/agentyard/agent/",
        "VOLUME /data",
        "YARD_DATA_DIR=/data",
        "YARD_LISTEN=0.0.0.0:3000",
        "YARD_AIO_BIND=0.0.0.0",
        "EXPOSE 3000 3001 6080 9223",
        r#"CMD ["aio"]"#,
    ] {
        assert_has(image, part, "the aio image");
    }
    // One logical line per RUN, then its commands: the last word of each
    // `useradd` is the user it makes.
    let joined = image.replace("\\\n", " ");
    let users: Vec<&str> = joined
        .lines()
        .flat_map(|line| line.split("&&"))
        .filter_map(|command| command.trim().strip_prefix("useradd "))
        .filter_map(|args| args.split_whitespace().last())
        .collect();
    assert_eq!(users, ["git", "browser"], "the services' own users");
}

#[test]
fn stack_image_routes_opencode_and_the_terminal_on_one_port() {
    let dockerfile = read("deploy/stack/Dockerfile");
    let start = read("deploy/stack/stack-start");
    let nginx = read("deploy/stack/nginx.conf");

    assert_has(&dockerfile, "\nEXPOSE 7681\n", "the stack's one port");
    assert_has(&dockerfile, "opencode-ai@", "OpenCode is installed");
    assert_has(&dockerfile, "\nUSER agent\n", "the stack runs unprivileged");
    assert_has(
        &dockerfile,
        "COPY nginx.conf /etc/agentyard/stack-nginx.conf",
        "the router's configuration",
    );
    assert_has(&start, "-c /etc/agentyard/stack-nginx.conf", "stack-start");
    assert_has(
        &nginx,
        "listen 7681;",
        "the router listens on the stack's port",
    );

    // OpenCode at /, the terminal at /terminal/, on the addresses the
    // router sends them to.
    assert_has(
        &start,
        "opencode web --hostname 127.0.0.1 --port",
        "OpenCode's web UI",
    );
    assert_has(&start, "OPENCODE_PORT=4096", "OpenCode's port");
    assert_has(
        &nginx,
        "proxy_pass http://127.0.0.1:4096;",
        "the router to OpenCode",
    );
    assert_has(
        &start,
        r#"--interface "$run/ttyd.sock" --base-path /terminal"#,
        "ttyd",
    );
    assert_has(&start, "run=/tmp/stack", "ttyd's socket directory");
    assert_has(
        &nginx,
        "proxy_pass http://unix:/tmp/stack/ttyd.sock;",
        "the router to ttyd",
    );
    assert_has(&nginx, "location /terminal/ {", "the terminal's path");
    assert_has(
        &nginx,
        "proxy_set_header Upgrade $http_upgrade;",
        "WebSockets pass",
    );

    let script = root().join("deploy/stack/stack-start");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "stack-start is executable");
    let syntax = run("bash", "bash", &["-n", "deploy/stack/stack-start"], &[]);
    accepted("bash -n", syntax);
}
