#!/usr/bin/env python3
"""Drive blender-session-mcp over Streamable HTTP with the official Python MCP SDK (PyPI `mcp`).

usage: python_sdk_http_client.py URL TOKEN PROTOCOL

PROTOCOL is how the client negotiates:
  default     the SDK's own default (`mcp.Client`, mode "auto"): it probes `server/discover`
              and speaks 2026-07-28 (no initialize, no Mcp-Session-Id) when the server
              answers it, else falls back to the initialize handshake
  2025-11-25  `mcp.Client` with mode "legacy": the initialize handshake at the newest
              handshake revision the SDK offers
  2025-06-18  the initialize handshake pinned to 2025-06-18. `mcp.Client` cannot pin an
              older handshake revision (mode "legacy" always offers 2025-11-25, and a
              handshake-era version string is refused as a mode), so this drives the SDK's
              `ClientSession` itself: it sends its own `InitializeRequest` through
              `send_request`, then `adopt`s the result and sends `notifications/initialized`,
              which is what `ClientSession.initialize()` does, with the version changed.

With `Authorization: Bearer TOKEN` it lists tools, runs `execute_blender_code` with a
`print(...)` and calls `get_session_info`; then it connects once without the header and once
with a wrong token, both of which must fail. The SDK turns an HTTP 401 without a JSON-RPC body
into an MCPError ("Server returned an error response") that does not carry the status, so the
statuses are read by an httpx2 response hook on the client's own HTTP client.

Prints one JSON line:
  {"asked", "protocol" (negotiated), "server" (name, or null when the server did not say),
   "tools", "code_text", "code_is_error", "session_id", "owner",
   "mcp_session_ids" (the Mcp-Session-Id headers the server sent),
   "no_token": {"failed", "error", "statuses", "www_authenticate"}, "wrong_token": {...}}
and exits 0, or non-zero when a call it expected to work failed (the report says what).
"""
import asyncio
import json
import sys
from contextlib import asynccontextmanager

import httpx2
import mcp.types as types
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

PROTOCOLS = ("default", "2025-11-25", "2025-06-18")


class Seen:
    """What came back over HTTP: every response's status and the headers that matter here."""

    def __init__(self):
        self.statuses = []
        self.session_ids = []
        self.challenges = []

    async def on_response(self, response: httpx2.Response):
        self.statuses.append(response.status_code)
        sid = response.headers.get("mcp-session-id")
        if sid and sid not in self.session_ids:
            self.session_ids.append(sid)
        challenge = response.headers.get("www-authenticate")
        if challenge and challenge not in self.challenges:
            self.challenges.append(challenge)


def http_client(headers, seen):
    """The SDK's own HTTP client (its default MCP timeouts) with these headers and the hook."""
    client = create_mcp_http_client(headers=headers)
    client.event_hooks = {"request": [], "response": [seen.on_response]}
    return client


class Connected:
    """A connected client: `call_tool` / `list_tools`, the negotiated version, the server name."""

    def __init__(self, api, protocol, server):
        self.api = api
        self.protocol = protocol
        self.server = server


@asynccontextmanager
async def connect(url, headers, protocol, seen):
    async with http_client(headers, seen) as hc:
        transport = streamable_http_client(url, http_client=hc)
        if protocol == "2025-06-18":
            async with transport as (read, write):
                async with ClientSession(read, write) as session:
                    result = await session.send_request(
                        types.InitializeRequest(
                            params=types.InitializeRequestParams(
                                protocol_version="2025-06-18",
                                capabilities=types.ClientCapabilities(),
                                client_info=types.Implementation(name="python-sdk-http-test", version="0"),
                            )
                        ),
                        types.InitializeResult,
                    )
                    session.adopt(result)
                    await session.send_notification(types.InitializedNotification())
                    yield Connected(session, session.protocol_version, result.server_info.name)
        else:
            mode = "auto" if protocol == "default" else "legacy"
            async with Client(transport, mode=mode) as client:
                info = client.server_info
                yield Connected(client, client.protocol_version, info.name if info else None)


def structured(result):
    return getattr(result, "structured_content", None) or {}


def error_text(e):
    """One line for an exception, through exception groups (anyio task groups wrap them)."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


async def must_fail(url, headers, protocol):
    """Connect and call a tool with these headers; what happened."""
    seen = Seen()
    try:
        async with connect(url, headers, protocol, seen) as c:
            await c.api.call_tool("get_session_info", {})
        failed, error = False, None
    except Exception as e:  # the SDK raises MCPError (or a group holding it)
        failed, error = True, error_text(e)
    return {
        "failed": failed,
        "error": error,
        "statuses": seen.statuses,
        "www_authenticate": seen.challenges,
    }


async def main(url, token, protocol):
    report = {"asked": protocol}
    seen = Seen()
    ok = False
    try:
        async with connect(url, {"Authorization": f"Bearer {token}"}, protocol, seen) as c:
            report["protocol"] = c.protocol
            report["server"] = c.server
            tools = await c.api.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            code = await c.api.call_tool("execute_blender_code", {"code": "print('hello from the Python SDK')"})
            report["code_is_error"] = code.is_error
            report["code_text"] = code.content[0].text if code.content else None
            info = await c.api.call_tool("get_session_info", {})
            report["info_is_error"] = info.is_error
            report["session_id"] = structured(info).get("session_id")
            report["owner"] = structured(info).get("owner")
            ok = not code.is_error and not info.is_error
    except Exception as e:
        report["error"] = error_text(e)
    report["mcp_session_ids"] = seen.session_ids
    report["statuses"] = sorted(set(seen.statuses))
    report["no_token"] = await must_fail(url, {}, protocol)
    report["wrong_token"] = await must_fail(url, {"Authorization": f"Bearer wrong-{token}"}, protocol)
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in PROTOCOLS:
        sys.exit(f"usage: python_sdk_http_client.py URL TOKEN {{{'|'.join(PROTOCOLS)}}}")
    sys.exit(asyncio.run(main(*sys.argv[1:])))
