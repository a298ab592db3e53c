"""Drives an MCP server with the official Python SDK (PyPI package `mcp`).

Reads a JSON plan on stdin and prints one JSON result per step, so the Rust
tests make their assertions on what a real, independent client saw.

Plan: {"transport": {"url": ..., "token": ..., "origin": ...} |
                    {"command": [...], "env": {...}},
       "mode": "auto" | "legacy" | "2026-07-28",
       "steps": [{"op": "list_tools"} | {"op": "call", "tool": ..., "args": {...}, "progress": bool}
                 | {"op": "bench", "tool": ..., "args": {...}, "count": N}]}
"""

import asyncio
import json
import sys
import time

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def describe(error: BaseException) -> dict:
    """An exception as the tests can match it, unwrapping task groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    status = getattr(getattr(error, "response", None), "status_code", None)
    return {"exception": type(error).__name__, "message": str(error), "status": status}


def result_of(result) -> dict:
    text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
    return {"isError": bool(result.is_error), "text": text, "structured": result.structured_content}


async def run(plan: dict) -> list:
    transport = plan["transport"]
    if "url" in transport:
        headers = {}
        if transport.get("token"):
            headers["Authorization"] = "Bearer " + transport["token"]
        if transport.get("origin"):
            headers["Origin"] = transport["origin"]
        http = httpx2.AsyncClient(headers=headers, timeout=120)
        server = streamable_http_client(transport["url"], http_client=http)
    else:
        command = transport["command"]
        server = StdioServerParameters(command=command[0], args=command[1:], env=transport.get("env"))
    results = []
    async with Client(server, mode=plan.get("mode", "auto")) as client:
        results.append({"op": "connected", "protocolVersion": client.protocol_version})
        for step in plan["steps"]:
            try:
                if step["op"] == "list_tools":
                    listed = await client.list_tools()
                    results.append({"op": "list_tools", "tools": [
                        {"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                        for t in listed.tools
                    ]})
                elif step["op"] == "call":
                    progress = []

                    async def on_progress(value, total, message):
                        progress.append({"progress": value, "total": total, "message": message})

                    result = await client.call_tool(
                        step["tool"], step.get("args", {}),
                        progress_callback=on_progress if step.get("progress") else None,
                    )
                    results.append({"op": "call", "tool": step["tool"], "progress": progress, **result_of(result)})
                elif step["op"] == "bench":
                    times = []
                    for _ in range(step["count"]):
                        started = time.perf_counter()
                        result = await client.call_tool(step["tool"], step.get("args", {}))
                        times.append(time.perf_counter() - started)
                        assert not result.is_error, result
                    times.sort()
                    results.append({"op": "bench", "p50_ms": times[len(times) // 2] * 1e3,
                                    "p99_ms": times[len(times) * 99 // 100] * 1e3})
            except Exception as error:  # noqa: BLE001 - the test decides what is expected
                results.append({"op": step["op"], **describe(error)})
    return results


def main() -> None:
    plan = json.load(sys.stdin)
    try:
        results = asyncio.run(run(plan))
    except BaseException as error:  # noqa: BLE001
        results = [{"op": "connect", **describe(error)}]
    print(json.dumps(results))


main()
