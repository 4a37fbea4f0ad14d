#!/usr/bin/env python3
"""Drive blender-session-mcp with the official Python MCP SDK (PyPI `mcp`).

usage: python_sdk_client.py BINARY BLENDER_PORT

Lists tools, calls get_scene_info and execute_blender_code, and prints one JSON line with
what it saw. Exits non-zero on any mismatch.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def attr(obj, snake, camel):
    """The SDK renamed fields to snake_case in 2.x; accept both spellings."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


async def main(binary, port):
    params = StdioServerParameters(command=binary, args=["--blender-port", port])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            scene = await session.call_tool("get_scene_info", {})
            code = await session.call_tool(
                "execute_blender_code",
                {"code": "bpy.ops.mesh.primitive_cube_add()\nprint('made', bpy.context.active_object.name)"},
            )
            failed = await session.call_tool("execute_blender_code", {"code": "raise RuntimeError('nope')"})
            report = {
                "server": attr(init, "server_info", "serverInfo").name,
                "tools": names,
                "scene_is_error": attr(scene, "is_error", "isError"),
                "scene": attr(scene, "structured_content", "structuredContent"),
                "code_is_error": attr(code, "is_error", "isError"),
                "code_text": code.content[0].text,
                "failed_is_error": attr(failed, "is_error", "isError"),
                "failed_text": failed.content[0].text,
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
            )
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
