# The agent image (agentyard/agent) built without the source tree: the same
# image as deploy/agent/Dockerfile, but `yard` comes ready-made from the
# build context instead of being compiled. The all-in-one image ships this
# directory as /usr/share/agentyard/agent with this file as its Dockerfile
# and its own `yard` beside it, so it can build the agent image on a fresh
# engine in a minute rather than a Rust build. By hand:
#
#   cp target/release/yard deploy/agent/yard
#   docker build -f deploy/agent/standalone.Dockerfile -t agentyard/agent:latest deploy/agent
FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates tmux \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g @anthropic-ai/claude-code
COPY yard /usr/local/bin/yard
# Managed settings: every hook event goes through `yard hook`, and the agent
# cannot turn that off in its own settings.
COPY managed-settings.json /etc/claude-code/managed-settings.json
COPY run-agent /usr/local/bin/run-agent
# The shared cache volumes take the owner of these directories when they
# are first mounted, so the agent's user can write to them.
RUN mkdir -p /cache/cargo /cache/npm /cache/pip && chown -R node:node /cache
USER node
WORKDIR /workspace
CMD ["/usr/local/bin/run-agent"]
