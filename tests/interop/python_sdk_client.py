#!/usr/bin/env python3
"""Drive blender-session-mcp with the official Python MCP SDK (PyPI `mcp`).

usage: python_sdk_client.py BINARY BLENDER_PORT

Lists tools, calls get_scene_info and execute_blender_code, arguments given as strings,
resources, prompts and logging, and prints one JSON line with what it saw. Exits non-zero on
any mismatch.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def attr(obj, snake, camel):
    """The SDK renamed fields to snake_case in 2.x; accept both spellings."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


async def main(binary, port, store):
    # The server on the store file the test gave (never the user's default one).
    params = StdioServerParameters(
        command=binary, args=["--blender-port", port, "--store-path", store]
    )
    logs = []

    async def on_log(params):
        logs.append(str(params.data))

    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            scene = await session.call_tool("get_scene_info", {})
            code = await session.call_tool(
                "execute_blender_code",
                {"code": "bpy.ops.mesh.primitive_cube_add()\nprint('made', bpy.context.active_object.name)"},
            )
            failed = await session.call_tool("execute_blender_code", {"code": "raise RuntimeError('nope')"})
            # Numbers as strings are accepted; a value that does not fit names the parameter.
            lenient = await session.call_tool("get_session_history", {"limit": "1"})
            wrong = await session.call_tool("get_session_history", {"limit": "lots"})
            resources = await session.list_resources()
            default = attr(lenient, "structured_content", "structuredContent")["session_id"]
            read_back = await session.read_resource(f"blender://sessions/{default}/history")
            prompts = await session.list_prompts()
            await session.set_logging_level("info")
            await session.call_tool("execute_blender_code", {"code": "print(1)"})
            for _ in range(50):
                if logs:
                    break
                await asyncio.sleep(0.1)
            report = {
                "server": attr(init, "server_info", "serverInfo").name,
                "tools": names,
                "scene_is_error": attr(scene, "is_error", "isError"),
                "scene": attr(scene, "structured_content", "structuredContent"),
                "code_is_error": attr(code, "is_error", "isError"),
                "code_text": code.content[0].text,
                "failed_is_error": attr(failed, "is_error", "isError"),
                "failed_text": failed.content[0].text,
                "lenient_entries": len(attr(lenient, "structured_content", "structuredContent")["entries"]),
                "wrong_is_error": attr(wrong, "is_error", "isError"),
                "wrong_text": wrong.content[0].text,
                "resources": sorted(str(r.uri) for r in resources.resources),
                "history_read": json.loads(read_back.contents[0].text)["total"],
                "prompts": sorted(p.name for p in prompts.prompts),
                "logs": logs[:3],
            }
            print(json.dumps(report))
            ok = (
                report["server"] == "blender-session-mcp"
                and "execute_blender_code" in names
                and "get_scene_info" in names
                and not report["scene_is_error"]
                and report["scene"]["object_count"] == 3
                and not report["code_is_error"]
                and code.content[0].text == "made Cube.001\n"
                and report["failed_is_error"]
                and "RuntimeError: nope" in failed.content[0].text
                and report["lenient_entries"] == 1
                and report["wrong_is_error"]
                and "`limit`" in report["wrong_text"]
                and "blender://sessions" in report["resources"]
                and report["history_read"] == 3
                and {"inspect_scene", "build_from_description", "explain_last_error"} <= set(report["prompts"])
                and len(logs) > 0
            )
            return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python_sdk_client.py BINARY BLENDER_PORT STORE_PATH")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])))
