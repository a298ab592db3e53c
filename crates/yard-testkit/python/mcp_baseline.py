"""A trivial MCP server with the Python SDK's own server, for benchmarks.

Serves one tool shaped like the yard's check_name_availability, over stdio
(`mcp_baseline.py stdio`) or streamable HTTP (`mcp_baseline.py http PORT`,
at /mcp on 127.0.0.1).
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("baseline")


@server.tool()
def check_name_availability(name: str) -> dict:
    """Whether a name can be used."""
    return {"available": True, "valid": True}


if sys.argv[1] == "stdio":
    server.run("stdio")
else:
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
