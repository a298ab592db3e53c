//! The command line: every subcommand, flag and environment variable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use yard_services::orchestrator::{AgentMode, CacheVolume};

/// agentyard: a self-hosted home for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "yard", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon: the API, the host router and the deployer.
    Serve(ServeArgs),
    /// Exit 0 when the daemon answers `/health` healthy, 1 otherwise: a
    /// container healthcheck without curl. Needs no token.
    Health {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Say whether a stack name can be used, and if not, why.
    Check {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deploy a stack and follow it until it is up; prints its URL.
    Deploy {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the stacks with their health, or restart or update one.
    Stacks {
        #[command(subcommand)]
        action: Option<StacksAction>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a stack and everything it owns (container and data volume).
    Destroy {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make, list and revoke the tokens people sign in with (admin).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List, set and unset the yard's settings (admin): the forge's address
    /// and credentials, and other services' tokens. Secrets are stored
    /// encrypted and listed only as set or unset.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The forge (admin): `yard forge init` sets it up again, finding what
    /// exists and making only what is missing.
    Forge {
        #[command(subcommand)]
        action: ForgeAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Put agents on a task, each in its own container, checkout and branch.
    Spawn(SpawnArgs),
    /// List agents (id, status, branch, age), or prune the ones that ended.
    Agents {
        #[command(subcommand)]
        action: Option<AgentsAction>,
        /// Show them in a table refreshed every second, until q or Esc.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Answer the questions agents ask, in a full-screen terminal UI.
    Prompt(PromptArgs),
    /// Show an agent's output.
    Logs {
        id: String,
        /// Keep following new output until the agent stops.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Attach to a running agent's terminal; detach with ctrl-e then e.
    Attach {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop an agent and remove its container (its branch and checkout stay).
    Stop {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show an agent's commits and changes against its base.
    Diff {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Merge an agent's branch into its source repository (all or nothing).
    Merge {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List an agent's hook decisions.
    Audit {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The hook an agent's client runs: reads one hook event on stdin, asks
    /// the yard, prints the decision.
    Hook(HookArgs),
    /// A stdio MCP server with the yard's tools (for `claude mcp add yard --
    /// yard mcp`): a bridge to the daemon's /mcp.
    Mcp(McpArgs),
    /// Check the engine, the socket, the store, the images and the policy,
    /// and say how to fix what is wrong.
    Doctor(ServeArgs),
    /// The all-in-one container's main process: the daemon, and the forge
    /// and browser it supervises; `yard aio status` lists them.
    Aio(Box<AioCommand>),
    /// Relay a DevTools (or noVNC) port behind the relay token: HTTP and
    /// WebSocket, with `/json` answers rewritten to point back here.
    Relay(RelayArgs),
}

/// `yard aio` runs the container; `yard aio status` asks a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AioCommand {
    #[command(subcommand)]
    pub(crate) action: Option<AioAction>,
    #[command(flatten)]
    pub(crate) run: AioArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AioAction {
    /// Each service with its state, pid, uptime, restarts and last exit.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How `yard aio` runs the container.
#[derive(Debug, Args)]
pub(crate) struct AioArgs {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    /// A TOML file that changes the built-in services: a `[services.NAME]`
    /// table replaces that service (or adds one), `enabled = false` removes
    /// it.
    #[arg(long, env = "YARD_AIO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where each service's rotated log is kept.
    #[arg(long, env = "YARD_AIO_LOG_DIR", default_value = "/var/log/agentyard")]
    pub(crate) log_dir: PathBuf,
    /// Where the DevTools relay and the noVNC page listen. Loopback by
    /// default; a container sets 0.0.0.0 to publish them (with the token).
    #[arg(long, env = "YARD_AIO_BIND", default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// An external browser's DevTools URL; without it the container runs
    /// Xvfb, Chromium, x11vnc and noVNC.
    #[arg(long, env = "CHROME_CDP_URL")]
    pub(crate) chrome_cdp_url: Option<String>,
    /// The page where people watch the browser [default: the noVNC page of
    /// the internal browser].
    #[arg(long, env = "BROWSER_VIEW_URL")]
    pub(crate) browser_view_url: Option<String>,
    /// The host name in the browser URLs handed to agents and people
    /// [default: the domain].
    #[arg(long, env = "YARD_BROWSER_HOST")]
    pub(crate) browser_host: Option<String>,
    /// The token the relays require [default: the one in
    /// <data-dir>/relay-token, made on first use].
    #[arg(long, env = "YARD_RELAY_TOKEN", hide_env_values = true)]
    pub(crate) relay_token: Option<String>,
    /// The agent image's build context (a directory with a Dockerfile):
    /// when it exists and the engine lacks the agent image, it is built in
    /// the background on start.
    #[arg(
        long,
        env = "YARD_AGENT_CONTEXT",
        default_value = "/usr/share/agentyard/agent"
    )]
    pub(crate) agent_context: PathBuf,
    /// How long the services get to stop, all together, on SIGTERM.
    #[arg(long, env = "YARD_AIO_STOP_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub(crate) stop_within: Duration,
}

/// `yard relay`: one port relayed behind the relay token.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Where to listen.
    #[arg(long, env = "YARD_RELAY_LISTEN", default_value = "127.0.0.1:9223")]
    pub(crate) listen: SocketAddr,
    /// The DevTools (or websockify) address relayed to.
    #[arg(long, env = "YARD_RELAY_UPSTREAM", default_value = "127.0.0.1:9222")]
    pub(crate) upstream: String,
    /// The token clients must give (bearer header or ?token=) [default: the
    /// one in <data-dir>/relay-token, made on first use].
    #[arg(long, env = "YARD_RELAY_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Where the relay token file is kept.
    #[arg(long, env = "YARD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Let anyone who reaches the port in without a token; allowed only
    /// on a loopback address.
    #[arg(long)]
    pub(crate) open: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PromptArgs {
    /// Show only the oldest question no other client shows (waiting for
    /// one if there is none), take its answer and exit: for a popup pane
    /// per question.
    #[arg(long)]
    pub(crate) once: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// Reach the daemon through its control socket instead of --url (from
    /// inside an agent, with the agent's credential).
    #[arg(long, env = "YARD_SOCKET")]
    pub(crate) socket: Option<PathBuf>,
    /// The agent's credential, used with --socket.
    #[arg(long, env = "YARD_AGENT_TOKEN", hide_env_values = true)]
    pub(crate) agent_token: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenAction {
    /// Make a token for a person; prints it once.
    Create {
        /// Whose token it is (unique among active tokens, whatever the case).
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_enum, default_value = "user")]
        role: Role,
        /// A reissue: the new token takes over the stacks and agents of this
        /// revoked token (by id or name). Without it, a new token owns
        /// nothing it did not make, even under an old token's name.
        #[arg(long, value_name = "ID_OR_NAME")]
        takes_over: Option<String>,
    },
    /// List the active tokens (never their secrets).
    List,
    /// Revoke a token by id or name; its sessions and its agents'
    /// credentials end at once, and its agents are stopped.
    Revoke {
        /// The token's id or name.
        #[arg(value_name = "ID_OR_NAME")]
        key: String,
        /// Leave its agents running (they cannot reach the yard until a new
        /// token takes over from this one).
        #[arg(long)]
        keep_agents: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Every setting: set or unset, and the value of those that are not
    /// secret.
    List,
    /// Set a setting. The value is read from stdin (so it stays out of the
    /// shell's history and `ps`), one trailing line break dropped; or give
    /// it with --value.
    Set {
        /// The setting, e.g. forge.url or forge.bot_token.
        key: String,
        /// The value, instead of reading it from stdin.
        #[arg(long)]
        value: Option<String>,
    },
    /// Clear a setting.
    Unset {
        /// The setting, e.g. forge.bot_token.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ForgeAction {
    /// Set the forge up: the bot and its token, the organisation with the
    /// bot among its owners, the system webhook to this yard. Safe to run
    /// again; prints what it did, never a secret.
    Init,
}

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// Deploy stacks and manage one's own; spawn and follow agents.
    User,
    /// Everything, including tokens and every stack.
    Admin,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StacksAction {
    /// Make a stack's container again and wait until it answers (its data
    /// stays); a stack the yard gave up on starts a fresh count.
    Restart { name: String },
    /// Run a stack on another image by a rolling update (the swarm
    /// backend): it keeps answering meanwhile, and an image that does not
    /// become healthy is rolled back (exit code 1, with the reason).
    Update {
        name: String,
        /// The image to run instead.
        #[arg(long)]
        image: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsAction {
    /// Remove the checkouts and branches of agents that have ended.
    Prune,
}

#[derive(Debug, Args)]
pub(crate) struct SpawnArgs {
    /// The source repository.
    #[arg(long)]
    pub(crate) repo: PathBuf,
    /// How many agents.
    #[arg(short = 'n', long = "count", default_value_t = 1)]
    pub(crate) count: u32,
    /// What the agents should do.
    #[arg(long)]
    pub(crate) task: String,
    /// The agent image [default: the daemon's YARD_AGENT_IMAGE].
    #[arg(long)]
    pub(crate) image: Option<String>,
    /// The commit to start from [default: HEAD].
    #[arg(long)]
    pub(crate) base: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// What the yard does with a stack that goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StackRestart {
    /// Make it again, with backoff, until it keeps dying.
    OnFailure,
    /// Only report it.
    Never,
}

/// What the hook does when the yard cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FailMode {
    /// Refuse tool calls: safe, and the default.
    Closed,
    /// Let the agent go ahead.
    Open,
}

#[derive(Debug, Args)]
pub(crate) struct HookArgs {
    /// The yard's control socket.
    #[arg(
        long,
        env = "YARD_SOCKET",
        default_value = "/run/agentyard/control.sock"
    )]
    pub(crate) socket: PathBuf,
    /// The agent's credential.
    #[arg(long, env = "YARD_AGENT_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// What to answer when the yard cannot be asked.
    #[arg(long, env = "YARD_HOOK_FAIL", value_enum, default_value = "closed")]
    pub(crate) fail: FailMode,
    /// How long to keep trying, at most 5 minutes.
    #[arg(long, env = "YARD_HOOK_TIMEOUT", default_value = "300s", value_parser = hook_timeout)]
    pub(crate) timeout: Duration,
}

/// How a client command reaches the daemon.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The daemon's URL.
    #[arg(
        long,
        global = true,
        env = "YARD_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub(crate) url: String,
    /// An API token; by default the admin token from the data directory.
    #[arg(long, global = true, env = "YARD_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The daemon's data directory, where the admin token is read from.
    #[arg(long, global = true, env = "YARD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// How the daemon runs.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on. Loopback by default: anything else is a
    /// decision to expose the yard.
    #[arg(long, env = "YARD_LISTEN", default_value = "127.0.0.1:3000")]
    pub(crate) listen: SocketAddr,
    /// Where the store, the admin token and the instance id live
    /// [default: $XDG_DATA_HOME/agentyard].
    #[arg(long, env = "YARD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://...) to keep state in instead of the
    /// SQLite file in the data directory.
    #[arg(long, env = "YARD_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The key the yard's secret settings are sealed with: 64 hex digits
    /// (`openssl rand -hex 32`). Give every yard on one PostgreSQL the same
    /// one, in the environment rather than on the command line [default:
    /// the one in <data-dir>/config-key, made on first start].
    #[arg(long, env = "YARD_CONFIG_KEY", hide_env_values = true)]
    pub(crate) config_key: Option<String>,
    /// Where stacks run.
    #[arg(long, env = "YARD_BACKEND", default_value = "docker", value_parser = ["docker", "swarm", "dokploy"])]
    pub(crate) backend: String,
    /// The parent domain of stack addresses: stack NAME answers at NAME.<domain>.
    #[arg(long, env = "YARD_DOMAIN", default_value = "localhost")]
    pub(crate) domain: String,
    /// The URL handed out for a stack, with {name} for its name
    /// [default: http://{name}.<domain>:<listen port>].
    #[arg(long, env = "YARD_STACK_URL_TEMPLATE")]
    pub(crate) stack_url_template: Option<String>,
    /// The image new stacks run.
    #[arg(
        long,
        env = "YARD_STACK_IMAGE",
        default_value = "agentyard/stack:latest"
    )]
    pub(crate) stack_image: String,
    /// The port stacks listen on [default: the image's first exposed port].
    #[arg(long, env = "YARD_STACK_PORT")]
    pub(crate) stack_port: Option<u16>,
    /// Environment for every stack container, KEY=VALUE (repeat, or
    /// comma-separate in the variable).
    #[arg(long = "stack-env", env = "YARD_STACK_ENV", value_delimiter = ',', value_parser = key_value)]
    pub(crate) stack_env: Vec<(String, String)>,
    /// More names nobody may deploy, besides admin, api, www, root, system,
    /// test, demo and portal.
    #[arg(long, env = "YARD_RESERVED_NAMES", value_delimiter = ',')]
    pub(crate) reserved_names: Vec<String>,
    /// Extra labels for everything the yard creates, KEY=VALUE.
    #[arg(long = "label", env = "YARD_LABELS", value_delimiter = ',', value_parser = label)]
    pub(crate) labels: Vec<(String, String)>,
    /// How long an agent's question waits for a person unless it says
    /// (at most 24h).
    #[arg(long, env = "YARD_QUESTION_TIMEOUT", default_value = "10m", value_parser = duration)]
    pub(crate) question_timeout: Duration,
    /// Inside a Zellij session, open a floating `yard prompt --once` pane
    /// for each question agents ask.
    #[arg(long, env = "YARD_PROMPT_PANES", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) prompt_panes: bool,
    /// How long a daemon's claim on a deployment lasts unless renewed. With
    /// several yards on one PostgreSQL, work whose daemon died is taken
    /// over by another this long after it stopped renewing.
    #[arg(long, env = "YARD_LEASE_TTL", default_value = "15s", value_parser = duration)]
    pub(crate) lease_ttl: Duration,
    /// swarm: the container the yard itself runs in, on a manager node; the
    /// yard then joins each stack's network and reaches it by service name.
    /// Unset, each stack publishes its port on the node in host mode.
    #[arg(long, env = "YARD_SWARM_CONTAINER")]
    pub(crate) swarm_container: Option<String>,
    /// swarm: give each stack a data volume at /data. Without one, a
    /// rolling update starts the new task before stopping the old, so the
    /// stack answers throughout.
    #[arg(long, env = "YARD_STACK_VOLUME", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) stack_volume: bool,
    /// swarm: put Traefik labels on every stack's service (router
    /// NAME.<domain>), for a Traefik with its Swarm provider.
    #[arg(long, env = "YARD_TRAEFIK", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) traefik: bool,
    /// swarm: a network Traefik is on, which every stack joins.
    #[arg(long, env = "YARD_TRAEFIK_NETWORK")]
    pub(crate) traefik_network: Option<String>,
    /// dokploy: the Dokploy server, e.g. https://dokploy.example.com.
    #[arg(long, env = "DOKPLOY_URL")]
    pub(crate) dokploy_url: Option<String>,
    /// dokploy: an API key (Dokploy: Settings > API Keys).
    #[arg(long, env = "DOKPLOY_API_KEY", hide_env_values = true)]
    pub(crate) dokploy_api_key: Option<String>,
    /// dokploy: the domain stacks are served under, NAME.<domain>
    /// [default: the yard's domain].
    #[arg(long, env = "DOKPLOY_DOMAIN")]
    pub(crate) dokploy_domain: Option<String>,
    /// dokploy: serve stacks over HTTPS with a Let's Encrypt certificate.
    #[arg(long, env = "DOKPLOY_HTTPS", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) dokploy_https: bool,
    /// How long a stack may take to answer HTTP after it starts.
    #[arg(long, env = "YARD_DEPLOY_TIMEOUT", default_value = "120s", value_parser = duration)]
    pub(crate) deploy_timeout: Duration,
    /// What happens to a stack that goes down: on-failure makes it again
    /// (with backoff, giving up after YARD_STACK_MAX_RESTARTS in ten
    /// minutes); never only reports it.
    #[arg(
        long,
        env = "YARD_STACK_RESTART",
        value_enum,
        default_value = "on-failure"
    )]
    pub(crate) stack_restart: StackRestart,
    /// How many restarts within ten minutes before the yard gives up on a
    /// stack.
    #[arg(long, env = "YARD_STACK_MAX_RESTARTS", default_value_t = 5)]
    pub(crate) stack_max_restarts: u32,
    /// How often every stack is looked at (besides the engine's events).
    #[arg(long, env = "YARD_HEALTH_INTERVAL", default_value = "30s", value_parser = duration)]
    pub(crate) health_interval: Duration,
    /// How often to look for and remove orphaned resources.
    #[arg(long, env = "YARD_RECONCILE_INTERVAL", default_value = "60s", value_parser = duration)]
    pub(crate) reconcile_interval: Duration,
    /// The control socket agents talk to [default: <data-dir>/control.sock].
    #[arg(long, env = "YARD_SOCKET")]
    pub(crate) socket: Option<PathBuf>,
    /// A named volume holding the socket's directory, to mount into agents
    /// at /run/agentyard, for a yard that runs in a container. Without it,
    /// agents get the socket file itself.
    #[arg(long, env = "YARD_CONTROL_VOLUME")]
    pub(crate) control_volume: Option<String>,
    /// The hook policy file [default: <data-dir>/policy.toml].
    #[arg(long, env = "YARD_POLICY")]
    pub(crate) policy: Option<PathBuf>,
    /// Refuse to start without a policy file.
    #[arg(long, env = "YARD_POLICY_REQUIRED")]
    pub(crate) policy_required: bool,
    /// The directories users' agents may work in, colon-separated: a spawn
    /// names a git repository inside one of them [default: <data-dir>/repos].
    #[arg(long = "repo-root", env = "YARD_REPO_ROOTS", value_delimiter = ':')]
    pub(crate) repo_roots: Vec<PathBuf>,
    /// Hold admins to the repository roots too.
    #[arg(long, env = "YARD_REPO_ROOTS_STRICT")]
    pub(crate) repo_roots_strict: bool,
    /// The images users' agents may run, as globs, comma-separated
    /// [default: the agent image]. Admins may run any local image.
    #[arg(
        long = "agent-images",
        env = "YARD_AGENT_IMAGES",
        value_delimiter = ','
    )]
    pub(crate) agent_images: Vec<String>,
    /// The image agents run.
    #[arg(
        long,
        env = "YARD_AGENT_IMAGE",
        default_value = "agentyard/agent:latest"
    )]
    pub(crate) agent_image: String,
    /// How agents run their client: `headless` (scripted, `--print`) or
    /// `interactive` (on a terminal, in tmux, for people to attach to).
    #[arg(long, env = "YARD_AGENT_MODE", default_value = "headless", value_parser = agent_mode)]
    pub(crate) agent_mode: AgentMode,
    /// The most agents one spawn may start.
    #[arg(long, env = "YARD_MAX_AGENTS", default_value_t = 32)]
    pub(crate) max_agents: u32,
    /// The most agents one person may have running (their agents' children
    /// included).
    #[arg(long, env = "YARD_MAX_AGENTS_PER_OWNER", default_value_t = 32)]
    pub(crate) max_agents_per_owner: u32,
    /// The most agents the yard runs at once.
    #[arg(long, env = "YARD_MAX_AGENTS_TOTAL", default_value_t = 128)]
    pub(crate) max_agents_total: u32,
    /// Memory for each agent (e.g. 4g, or none).
    #[arg(long, env = "YARD_AGENT_MEMORY", default_value = "4g", value_parser = memory)]
    pub(crate) agent_memory: Limit<i64>,
    /// CPUs for each agent (e.g. 2, 0.5, or none).
    #[arg(long, env = "YARD_AGENT_CPUS", default_value = "2", value_parser = cpus)]
    pub(crate) agent_cpus: Limit<f64>,
    /// Memory for each stack (e.g. 2g, or none).
    #[arg(long, env = "YARD_STACK_MEMORY", default_value = "2g", value_parser = memory)]
    pub(crate) stack_memory: Limit<i64>,
    /// CPUs for each stack (e.g. 1, or none).
    #[arg(long, env = "YARD_STACK_CPUS", default_value = "1", value_parser = cpus)]
    pub(crate) stack_cpus: Limit<f64>,
    /// How long a client may take to send a request's headers (and how
    /// long an idle connection stays open).
    #[arg(long, env = "YARD_HEADER_TIMEOUT", default_value = "15s", value_parser = duration)]
    pub(crate) header_timeout: Duration,
    /// Shared cache volumes for agents, NAME:PATH[:VARIABLE], the variable
    /// set to PATH [default: cargo, npm and pip caches].
    #[arg(long = "agent-cache", env = "YARD_AGENT_CACHES", value_delimiter = ',', value_parser = cache_volume)]
    pub(crate) agent_caches: Vec<CacheVolume>,
    /// Environment for every agent, KEY=VALUE (for example the API key its
    /// assistant needs).
    #[arg(long = "agent-env", env = "YARD_AGENT_ENV", value_delimiter = ',', value_parser = key_value, hide_env_values = true)]
    pub(crate) agent_env: Vec<(String, String)>,
    /// More browser origins allowed to call /mcp, besides the yard's own
    /// (http://localhost:<port> and http://127.0.0.1:<port>).
    #[arg(
        long = "mcp-allowed-origin",
        env = "YARD_MCP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) mcp_allowed_origins: Vec<String>,
    /// More Host values /mcp accepts on TCP, besides loopback names.
    #[arg(
        long = "mcp-allowed-host",
        env = "YARD_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub(crate) mcp_allowed_hosts: Vec<String>,
    /// Let only a stack's owner (or an admin) through its address: by token,
    /// or by a session the portal hands over.
    #[arg(long, env = "YARD_PROTECT_STACKS")]
    pub(crate) protect_stacks: bool,
    /// Where people reach the portal [default: http://<domain>:<listen port>].
    #[arg(long, env = "YARD_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// An external forge (Gitea) to set up and work with, e.g.
    /// https://git.example.com; without it `yard aio` runs its own.
    #[arg(long, env = "GITEA_URL")]
    pub(crate) gitea_url: Option<String>,
    /// A site admin's API token on the external forge (with GITEA_URL).
    #[arg(long, env = "GITEA_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) gitea_admin_token: Option<String>,
    /// The site admin of the forge `yard aio` runs.
    #[arg(long, env = "ADMIN_USER", default_value = "yard-admin")]
    pub(crate) admin_user: String,
    /// That admin's password (prefer the variable) [default: the stored
    /// one, or one generated on first boot and stored encrypted].
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,
    /// The forge user agents work as.
    #[arg(long, env = "BOT_USER", default_value = "yard-bot")]
    pub(crate) bot_user: String,
    /// The forge organisation the bot owns.
    #[arg(long, env = "ORG_NAME", default_value = "agentyard")]
    pub(crate) org_name: String,
    /// Where the forge reaches this yard: its webhook goes to
    /// <base>/webhook/gitea [default: the portal's URL].
    #[arg(long, env = "YARD_WEBHOOK_BASE")]
    pub(crate) webhook_base: Option<String>,
    /// Mount this yard binary into agents at /usr/local/bin/yard, for agent
    /// images without `yard` (it must suit the image's C library).
    #[arg(long, env = "YARD_LEND_BINARY")]
    pub(crate) lend_binary: bool,
}

fn key_value(raw: &str) -> Result<(String, String), String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{raw:?} has an empty key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A KEY=VALUE label outside the yard's own namespace (`agentyard.*`), so
/// nothing an operator adds can pass for something the yard made.
fn label(raw: &str) -> Result<(String, String), String> {
    let (key, value) = key_value(raw)?;
    if yard_engine::is_reserved_label(&key) {
        return Err(format!(
            "{key} is in the yard's own label namespace ({}*); pick another key",
            yard_engine::RESERVED_LABEL_PREFIX
        ));
    }
    Ok((key, value))
}

/// A resource limit, or none (`none`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limit<T>(pub(crate) Option<T>);

fn memory(raw: &str) -> Result<Limit<i64>, String> {
    yard_engine::parse_memory(raw).map(Limit)
}

fn cpus(raw: &str) -> Result<Limit<f64>, String> {
    yard_engine::parse_cpus(raw).map(Limit)
}

fn cache_volume(raw: &str) -> Result<CacheVolume, String> {
    CacheVolume::parse(raw)
}

/// A hook timeout: at most 5 minutes, so an agent is never stuck longer.
fn hook_timeout(raw: &str) -> Result<Duration, String> {
    let parsed = duration(raw)?;
    if parsed > Duration::from_secs(300) {
        return Err("at most 5 minutes (300s)".to_owned());
    }
    Ok(parsed)
}

fn duration(raw: &str) -> Result<Duration, String> {
    let parsed =
        humantime::parse_duration(raw).map_err(|e| format!("{raw:?}: {e} (try 90s or 2m)"))?;
    if parsed.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(parsed)
}

fn agent_mode(text: &str) -> Result<AgentMode, String> {
    match text {
        "headless" => Ok(AgentMode::Headless),
        "interactive" => Ok(AgentMode::Interactive),
        other => Err(format!(
            "{other:?} is not an agent mode: say headless or interactive"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn labels_cannot_overwrite_ours() {
        assert!(label("team=a").is_ok());
        assert!(label("agentyard.managed=false").is_err());
        assert!(label("agentyard.agent=x").is_err());
        assert!(label("AgentYard.anything=x").is_err());
        assert!(label("novalue").is_err());
        assert!(key_value("=x").is_err());
    }

    #[test]
    fn limits_parse_from_the_command_line() {
        let args = Cli::try_parse_from([
            "yard",
            "serve",
            "--agent-memory",
            "512m",
            "--stack-cpus",
            "none",
        ])
        .unwrap();
        let Command::Serve(serve) = args.command else {
            panic!("not serve");
        };
        assert_eq!(serve.agent_memory, Limit(Some(512 << 20)));
        assert_eq!(serve.agent_cpus, Limit(Some(2.0)));
        assert_eq!(serve.stack_cpus, Limit(None));
        assert!(Cli::try_parse_from(["yard", "serve", "--agent-memory", "lots"]).is_err());
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
    }
}
