//! Stack images for tests, built here from a static busybox (no registry).
//!
//! Each image is a root filesystem of one static binary, imported with
//! `docker import` semantics (`create_image` from source `-`). They take a
//! second to build and are kept between runs; the tag changes whenever
//! what they do changes.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::TryStreamExt;
use tokio::sync::OnceCell;

/// Serves `/` with HTTP 200 on port 8080 at once; the page reads
/// `stack <YARD_STACK_NAME>`.
pub const WEB_IMAGE: &str = "agentyard-test/web:1";
/// Like [`WEB_IMAGE`], but answers only after 4 seconds.
pub const SLOW_IMAGE: &str = "agentyard-test/slow:1";
/// Prints a message and exits with code 3.
pub const CRASH_IMAGE: &str = "agentyard-test/crash:1";
/// Prints `ready`, then echoes its stdin: a stand-in terminal program.
pub const ECHO_IMAGE: &str = "agentyard-test/echo:1";
/// Serves like [`WEB_IMAGE`] for 2 seconds, then exits with code 3: a
/// stack in a crash loop.
pub const FLAKY_IMAGE: &str = "agentyard-test/flaky:1";
/// Serves like [`WEB_IMAGE`] for 2 seconds, then takes memory until the
/// kernel kills it at its limit.
pub const HUNGRY_IMAGE: &str = "agentyard-test/hungry:1";

const SERVE: &str = "echo \"stack $YARD_STACK_NAME\" > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www";
/// Serves in the background, so the script goes on.
const SERVE_AWHILE: &str = "echo \"stack $YARD_STACK_NAME\" > /www/index.html && /bin/busybox httpd -p 8080 -h /www && /bin/busybox sleep 2";

static BUILT: OnceCell<()> = OnceCell::const_new();

/// Builds the test images that are not on the engine yet.
pub async fn ensure_stack_images() {
    BUILT
        .get_or_init(|| async {
            let docker = Docker::connect_with_defaults().expect("a Docker client");
            let rootfs = rootfs();
            for (image, script) in [
                (WEB_IMAGE, SERVE.to_owned()),
                (SLOW_IMAGE, format!("/bin/busybox sleep 4; {SERVE}")),
                (
                    CRASH_IMAGE,
                    "echo 'stack refuses to start' >&2; exit 3".to_owned(),
                ),
                (ECHO_IMAGE, "echo ready; exec /bin/busybox cat".to_owned()),
                (
                    FLAKY_IMAGE,
                    format!("{SERVE_AWHILE}; echo 'stack gave up' >&2; exit 3"),
                ),
                (
                    HUNGRY_IMAGE,
                    format!("{SERVE_AWHILE}; x=xxxxxxxx; while :; do x=\"$x$x\"; done"),
                ),
            ] {
                if docker.inspect_image(image).await.is_ok() {
                    continue;
                }
                let (repo, tag) = image.split_once(':').expect("tagged image");
                let cmd = format!("CMD {}", serde_json::json!(["/bin/sh", "-c", script]));
                let options = CreateImageOptionsBuilder::new()
                    .from_src("-")
                    .repo(repo)
                    .tag(tag)
                    .changes(vec!["EXPOSE 8080/tcp".to_owned(), cmd])
                    .build();
                docker
                    .create_image(
                        Some(options),
                        Some(bollard::body_full(rootfs.clone().into())),
                        None,
                    )
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap_or_else(|e| panic!("importing {image}: {e}"));
            }
        })
        .await;
}

fn busybox() -> std::path::PathBuf {
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("a static busybox for test images: apt-get install busybox-static")
}

/// `/bin/busybox`, `/bin/sh` linked to it, and an empty `/www` and `/tmp`.
fn rootfs() -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for dir in ["bin/", "www/", "tmp/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp/" { 0o1777 } else { 0o755 });
        header.set_size(0);
        archive
            .append_data(&mut header, dir, std::io::empty())
            .expect("tar dir");
    }
    archive
        .append_path_with_name(busybox(), "bin/busybox")
        .expect("tar busybox");
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    archive
        .append_link(&mut link, "bin/sh", "busybox")
        .expect("tar link");
    archive.into_inner().expect("tar")
}
