#!/usr/bin/env node
// Drive blender-session-mcp over Streamable HTTP with the official TypeScript MCP SDK (npm
// `@modelcontextprotocol/sdk`, pinned in package.json): its `StreamableHTTPClientTransport`
// with the token in `requestInit.headers`, on the SDK's protocol (1.x: 2025-11-25, with an
// `Mcp-Session-Id`).
//
// usage: node http_client.mjs URL TOKEN
//
// With `Authorization: Bearer TOKEN` it lists tools, runs `execute_blender_code` with a
// `print(...)` and calls `get_session_info`; then it connects once without the header and once
// with a wrong token, both of which must fail (the SDK throws a `StreamableHTTPError` whose
// `code` is the HTTP status). Prints one JSON line:
//   {"server", "protocol", "mcp_session_id", "tools", "code_text", "code_is_error",
//    "session_id", "owner", "no_token": {"failed", "status", "error"}, "wrong_token": {...}}
// and exits 0, or 1 when a call it expected to work failed (the report's `error` says which).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write("usage: node http_client.mjs URL TOKEN\n");
  process.exit(2);
}

function transportWith(headers) {
  return new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
}

function newClient() {
  return new Client({ name: "ts-sdk-http-test", version: "0" });
}

/** Connect and call a tool with these headers; what happened. */
async function mustFail(headers) {
  const client = newClient();
  try {
    await client.connect(transportWith(headers));
    await client.callTool({ name: "get_session_info", arguments: {} });
    return { failed: false, status: null, error: null };
  } catch (e) {
    return { failed: true, status: e?.code ?? null, error: `${e?.name}: ${e?.message}` };
  } finally {
    await client.close().catch(() => {});
  }
}

const report = {};
let ok = false;
const client = newClient();
const transport = transportWith({ Authorization: `Bearer ${token}` });
try {
  await client.connect(transport);
  report.server = client.getServerVersion()?.name ?? null;
  report.protocol = transport.protocolVersion ?? null;
  report.mcp_session_id = transport.sessionId ?? null;
  const { tools } = await client.listTools();
  report.tools = tools.map((t) => t.name).sort();
  const code = await client.callTool({
    name: "execute_blender_code",
    arguments: { code: "print('hello from the TypeScript SDK')" },
  });
  report.code_is_error = code.isError ?? false;
  report.code_text = code.content?.[0]?.text ?? null;
  const info = await client.callTool({ name: "get_session_info", arguments: {} });
  report.info_is_error = info.isError ?? false;
  report.session_id = info.structuredContent?.session_id ?? null;
  report.owner = info.structuredContent?.owner ?? null;
  ok = !report.code_is_error && !report.info_is_error;
  // End the MCP session as a well-behaved client does (DELETE with its Mcp-Session-Id).
  await transport.terminateSession();
} catch (e) {
  report.error = `${e?.name}: ${e?.message}`;
} finally {
  await client.close().catch(() => {});
}
report.no_token = await mustFail({});
report.wrong_token = await mustFail({ Authorization: `Bearer wrong-${token}` });
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(ok ? 0 : 1);
