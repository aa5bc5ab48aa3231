#!/usr/bin/env node
// Runs the handinger-mcp binary for this platform with the arguments, stdio, signals and
// exit code passed straight through, so `npx -y handinger-mcp` behaves like the binary.
//
// The binary comes in one package per platform (@handinger/mcp-<platform>-<arch>), listed
// as optional dependencies with `os` and `cpu` set, so npm installs only the one that fits.
// Node cannot exec(), so this process stays as a thin parent: the child shares its stdin,
// stdout and stderr (MCP messages never pass through JavaScript), and every signal a client
// sends to stop the server is handed on.
"use strict";

const { spawn } = require("node:child_process");
const { optionalDependencies } = require("../package.json");

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGBREAK"];

function fail(message) {
  process.stderr.write(`handinger-mcp: ${message}\n`);
  process.exit(1);
}

function binaryPath() {
  const target = `${process.platform}-${process.arch}`;
  const pkg = `@handinger/mcp-${target}`;
  if (!(pkg in optionalDependencies)) {
    const known = Object.keys(optionalDependencies).map((p) => p.replace("@handinger/mcp-", ""));
    fail(
      `no prebuilt binary for ${target} (there are: ${known.join(", ")}). ` +
        "Build it from source instead: cargo install --locked --git https://github.com/handinger/handinger-mcp " +
        "(see https://github.com/handinger/handinger-mcp#readme)",
    );
  }
  const exe = process.platform === "win32" ? "handinger-mcp.exe" : "handinger-mcp";
  try {
    return require.resolve(`${pkg}/bin/${exe}`);
  } catch {
    fail(
      `the package ${pkg}, which carries the binary for ${target}, is not installed. ` +
        "npm leaves optional dependencies out with --omit=optional or --no-optional; " +
        "install again without it (npx -y handinger-mcp does), or download the binary " +
        "from https://github.com/handinger/handinger-mcp/releases",
    );
  }
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: true });

const forwarders = new Map();
for (const signal of SIGNALS) {
  const forward = () => {
    try {
      child.kill(signal);
    } catch {
      // the child is already gone; its exit handler ends this process
    }
  };
  try {
    process.on(signal, forward);
    forwarders.set(signal, forward);
  } catch {
    // a signal this platform does not have
  }
}

child.on("error", (error) => fail(`could not start ${binary}: ${error.message}`));
child.on("exit", (code, signal) => {
  if (signal) {
    // End the same way the binary did, so whoever started us sees the signal too.
    for (const [name, forward] of forwarders) process.removeListener(name, forward);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
