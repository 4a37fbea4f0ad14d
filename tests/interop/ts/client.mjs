#!/usr/bin/env node
// Drive blender-session-mcp with the official TypeScript MCP SDK (npm
// `@modelcontextprotocol/sdk`, pinned in package.json), the way a real client does.
//
// usage: node client.mjs BINARY BLENDER_PORT
//
// Spawns `BINARY serve --blender-port BLENDER_PORT` over stdio and runs the checks below, each
// on its own (one failing does not stop the others). Prints one JSON line:
//   {"server": ..., "checks": {"<name>": {"ok": true, ...details} | {"ok": false, "error": ...}},
//    "failures": ["<name>: <reason>", ...]}
// and exits 0 when every check passed, 1 otherwise (the reasons also go to stderr).
//
// Checks:
//   tools        tools/list; every tool that returns structuredContent declares an
//                outputSchema, and every structuredContent returned by any call in this run
//                validates against it (the SDK's Client does this itself once it has listed
//                tools; each result is also validated explicitly with the SDK's Ajv validator)
//   lenient      arguments as some clients send them: numbers and objects as JSON strings
//   resources    resources/list, resources/templates/list, resources/read, resources/subscribe
//   prompts      prompts/list, prompts/get
//   logging      logging/setLevel, then notifications/message
//   completion   completion/complete of the session template's session_id argument
//   long_call    a 70 s execute_blender_code under the client's default 60 s request timeout,
//                kept alive by progress notifications (resetTimeoutOnProgress)
//
// The client is strict about capabilities (enforceStrictCapabilities): it only sends requests
// the server advertised, as well-behaved clients do.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";

const SESSIONS_URI = "blender://sessions";
const SESSION_TEMPLATE = "blender://sessions/{session_id}";
const HISTORY_TEMPLATE = "blender://sessions/{session_id}/history";
const PROMPTS = ["inspect_scene", "build_from_description", "explain_last_error"];
const NOTIFICATION_WAIT_MS = 5000;

const [binary, port, storePath] = process.argv.slice(2);
if (!binary || !port || !storePath) {
  process.stderr.write("usage: node client.mjs BINARY BLENDER_PORT STORE_PATH\n");
  process.exit(2);
}

class CheckFailed extends Error {}

function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `pred()` holds, polling, for at most `ms`; returns whether it held. */
async function waitUntil(pred, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pred()) return true;
    await sleep(25);
  }
  return pred();
}

function textOf(result) {
  return (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

const validatorProvider = new AjvJsonSchemaValidator();
const toolsByName = new Map();
const compiled = new Map();
// Every structuredContent seen in this run: tool -> number validated; and what went wrong.
const structuredValidated = {};
const schemaViolations = [];

function violation(msg) {
  if (!schemaViolations.includes(msg)) schemaViolations.push(msg);
}

/**
 * tools/call through the SDK's Client (which validates structuredContent against the listed
 * outputSchema itself and throws when it does not match), then validate again explicitly.
 */
async function callTool(client, name, args, options) {
  let result;
  try {
    result = await client.callTool({ name, arguments: args }, undefined, options);
  } catch (e) {
    // The SDK's own output-schema check (it throws an McpError when a result does not match).
    if (/output schema|structured content/i.test(e?.message ?? "")) {
      violation(`${name} (the SDK's own check): ${e.message}`);
    }
    throw e;
  }
  if (result.structuredContent !== undefined) {
    const tool = toolsByName.get(name);
    // Recorded, not thrown: the `output_schemas` verdict reports these, and the check that
    // made the call goes on to test its own feature.
    if (!tool?.outputSchema) {
      violation(`${name} returned structuredContent but declares no outputSchema`);
    } else {
      if (!compiled.has(name)) compiled.set(name, validatorProvider.getValidator(tool.outputSchema));
      const verdict = compiled.get(name)(result.structuredContent);
      if (verdict.valid) {
        structuredValidated[name] = (structuredValidated[name] ?? 0) + 1;
      } else {
        violation(`${name}'s structuredContent does not match its outputSchema: ${verdict.errorMessage}`);
      }
    }
  }
  return result;
}

/** A tool call that must succeed (no isError). */
async function callOk(client, name, args, options) {
  const result = await callTool(client, name, args, options);
  check(!result.isError, `${name} ${JSON.stringify(args)} failed: ${textOf(result)}`);
  return result;
}

async function defaultSessionId(client) {
  // Any call without session_id makes the default session; list_sessions then names it.
  await callOk(client, "get_session_info", {});
  const listed = await callOk(client, "list_sessions", {});
  const id = listed.structuredContent?.default_session;
  check(typeof id === "string" && id.length > 0, `list_sessions has no default_session: ${textOf(listed)}`);
  return id;
}

// ---- the checks ----

async function checkTools(client) {
  const { tools } = await client.listTools();
  for (const t of tools) toolsByName.set(t.name, t);
  const names = tools.map((t) => t.name).sort();
  for (const expected of ["execute_blender_code", "get_scene_info", "list_sessions", "get_session_history"]) {
    check(names.includes(expected), `tools/list lacks ${expected}: ${names.join(", ")}`);
  }
  for (const t of tools) {
    if (t.outputSchema) {
      check(t.outputSchema.type === "object", `${t.name}'s outputSchema is not of type object`);
    }
  }
  // Every tool that returns JSON, called once (the SDK and callTool validate each result).
  await callOk(client, "get_scene_info", {});
  await callOk(client, "get_object_info", { name: "Cube" });
  await callOk(client, "get_session_info", {});
  await callOk(client, "get_session_history", {});
  await callOk(client, "list_sessions", {});
  await callOk(client, "blender_command", { type: "get_scene_info" });
  const created = await callOk(client, "create_session", {});
  const extra = created.structuredContent?.session_id;
  check(typeof extra === "string", `create_session returned no session_id: ${textOf(created)}`);
  await callOk(client, "close_session", { session_id: extra });
  check(
    schemaViolations.length === 0,
    `${schemaViolations.length} structured results without a matching outputSchema (listed under output_schemas)`,
  );
  const structured = Object.keys(structuredValidated).sort();
  return {
    tools: names,
    with_output_schema: tools.filter((t) => t.outputSchema).map((t) => t.name).sort(),
    returned_structured: structured,
  };
}

async function checkLenient(client) {
  const history = await callOk(client, "get_session_history", { limit: "2" });
  const entries = history.structuredContent?.entries;
  check(Array.isArray(entries), `get_session_history {limit: "2"} has no entries array: ${textOf(history)}`);
  check(entries.length <= 2, `get_session_history {limit: "2"} returned ${entries.length} entries`);

  const shot = await callOk(client, "get_viewport_screenshot", { max_size: "64" });
  const image = (shot.content ?? []).find((c) => c.type === "image");
  check(image && image.mimeType === "image/png", `get_viewport_screenshot {max_size: "64"} returned no PNG image`);

  const cmd = await callOk(client, "blender_command", { type: "get_scene_info", params: "{}" });
  check(cmd.structuredContent !== undefined, `blender_command with params "{}" returned no structuredContent: ${textOf(cmd)}`);

  let wrong;
  try {
    wrong = await callTool(client, "get_session_history", { limit: "lots" });
  } catch (e) {
    throw new CheckFailed(`get_session_history {limit: "lots"} should be an isError result, got a JSON-RPC error: ${e.message}`);
  }
  check(wrong.isError === true, `get_session_history {limit: "lots"} did not fail: ${textOf(wrong)}`);
  check(/\blimit\b/.test(textOf(wrong)), `the error for {limit: "lots"} does not name "limit": ${textOf(wrong)}`);
  return { history_entries: entries.length, wrong_limit_error: textOf(wrong) };
}

async function checkResources(client) {
  const { resources } = await client.listResources();
  const uris = resources.map((r) => r.uri);
  check(uris.includes(SESSIONS_URI), `resources/list lacks ${SESSIONS_URI}: ${uris.join(", ")}`);

  const { resourceTemplates } = await client.listResourceTemplates();
  const templates = resourceTemplates.map((t) => t.uriTemplate);
  for (const t of [SESSION_TEMPLATE, HISTORY_TEMPLATE]) {
    check(templates.includes(t), `resources/templates/list lacks ${t}: ${templates.join(", ")}`);
  }

  const id = await defaultSessionId(client);
  const sessionUri = `blender://sessions/${id}`;
  const historyUri = `blender://sessions/${id}/history`;
  const read = {};
  for (const uri of [SESSIONS_URI, sessionUri, historyUri]) {
    const { contents } = await client.readResource({ uri });
    check(Array.isArray(contents) && contents.length > 0, `resources/read ${uri} returned no contents`);
    check(typeof contents[0].text === "string", `resources/read ${uri} returned no text`);
    check(contents[0].text.includes(id), `resources/read ${uri} does not mention session ${id}`);
    read[uri] = { uri: contents[0].uri, mimeType: contents[0].mimeType };
  }

  const updated = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updated.push({ uri: n.params.uri, at: Date.now() });
  });
  await client.subscribeResource({ uri: sessionUri });
  const before = Date.now();
  await callOk(client, "get_scene_info", {});
  const got = await waitUntil(
    () => updated.some((u) => u.uri === sessionUri && u.at >= before),
    NOTIFICATION_WAIT_MS,
  );
  check(got, `no notifications/resources/updated for ${sessionUri} within ${NOTIFICATION_WAIT_MS} ms of a command (got: ${JSON.stringify(updated.map((u) => u.uri))})`);
  await client.unsubscribeResource({ uri: sessionUri });
  return { resources: uris, templates, read, updated: updated.length };
}

async function checkPrompts(client) {
  const { prompts } = await client.listPrompts();
  const names = prompts.map((p) => p.name);
  for (const p of PROMPTS) check(names.includes(p), `prompts/list lacks ${p}: ${names.join(", ")}`);
  const build = prompts.find((p) => p.name === "build_from_description");
  const argNames = (build.arguments ?? []).map((a) => a.name);
  check(argNames.includes("description"), `build_from_description has no "description" argument: ${argNames.join(", ")}`);
  const messages = {};
  for (const name of PROMPTS) {
    const args = name === "build_from_description" ? { description: "a red cube on a grey plane" } : {};
    const got = await client.getPrompt({ name, arguments: args });
    check(Array.isArray(got.messages) && got.messages.length > 0, `prompts/get ${name} returned no messages`);
    messages[name] = got.messages.length;
  }
  return { prompts: names, messages };
}

async function checkLogging(client) {
  const messages = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    messages.push({ level: n.params.level, at: Date.now(), data: n.params.data });
  });
  await client.setLoggingLevel("info");
  const before = Date.now();
  await callOk(client, "get_scene_info", {});
  const got = await waitUntil(() => messages.some((m) => m.at >= before), NOTIFICATION_WAIT_MS);
  check(got, `no notifications/message within ${NOTIFICATION_WAIT_MS} ms of a command after logging/setLevel info`);
  const after = messages.filter((m) => m.at >= before);
  return { messages: after.length, levels: [...new Set(after.map((m) => m.level))] };
}

async function checkCompletion(client) {
  const id = await defaultSessionId(client);
  const values = {};
  for (const value of ["", id.slice(0, id.length - 4)]) {
    const { completion } = await client.complete({
      ref: { type: "ref/resource", uri: SESSION_TEMPLATE },
      argument: { name: "session_id", value },
    });
    check(
      completion.values.includes(id),
      `completion/complete of session_id with value ${JSON.stringify(value)} lacks ${id}: ${JSON.stringify(completion.values)}`,
    );
    values[JSON.stringify(value)] = completion.values.length;
  }
  return { default_session: id, values };
}

async function checkLongCall(client) {
  let progress = 0;
  const started = Date.now();
  const result = await callOk(
    client,
    "execute_blender_code",
    { code: "import time\ntime.sleep(70)\nprint('done')" },
    { resetTimeoutOnProgress: true, onprogress: () => { progress += 1; } },
  );
  const seconds = (Date.now() - started) / 1000;
  check(textOf(result).trim() === "done", `the long call printed ${JSON.stringify(textOf(result))}, not "done"`);
  check(progress >= 10, `the long call got ${progress} progress notifications (want >= 10)`);
  return { seconds, progress };
}

// ---- main ----

async function main() {
  const transport = new StdioClientTransport({
    command: binary,
    // The server on the store file the test gave (never the user's default one).
    args: ["serve", "--blender-port", String(port), "--store-path", storePath],
    stderr: "inherit",
  });
  const client = new Client(
    { name: "blender-session-mcp-ts-interop", version: "0.1.0" },
    { capabilities: {}, enforceStrictCapabilities: true, jsonSchemaValidator: validatorProvider },
  );
  await client.connect(transport);
  const report = {
    server: client.getServerVersion()?.name,
    capabilities: client.getServerCapabilities(),
    checks: {},
    failures: [],
  };
  const run = async (name, fn) => {
    try {
      report.checks[name] = { ok: true, ...(await fn(client)) };
    } catch (e) {
      const reason = e instanceof CheckFailed ? e.message : `${e?.name ?? "Error"}: ${e?.message ?? e}`;
      report.checks[name] = { ok: false, error: reason };
      report.failures.push(`${name}: ${reason}`);
    }
  };
  await run("tools", checkTools);
  await run("lenient", checkLenient);
  await run("resources", checkResources);
  await run("prompts", checkPrompts);
  await run("logging", checkLogging);
  await run("completion", checkCompletion);
  await run("long_call", checkLongCall);
  // The output-schema verdict covers every call above, not only those of `tools`.
  report.checks.output_schemas = {
    ok: schemaViolations.length === 0,
    validated: structuredValidated,
    ...(schemaViolations.length ? { error: schemaViolations.join("; ") } : {}),
  };
  if (schemaViolations.length) report.failures.push(`output_schemas: ${schemaViolations.join("; ")}`);
  await client.close();
  process.stdout.write(JSON.stringify(report) + "\n");
  for (const f of report.failures) process.stderr.write(`FAILED ${f}\n`);
  return report.failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`client.mjs: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
