#!/usr/bin/env node
// Which platform a handinger-mcp binary is for, read from its header (ELF, Mach-O, PE),
// in Node's terms (`process.platform`-`process.arch`: linux-x64, darwin-arm64, win32-x64,
// or darwin-universal for a fat Mach-O). Used by manifests/npm/build.sh and
// manifests/mcpb/build.sh, so a package can never carry a binary for another platform
// than its name says.
//
// Usage: node binary-platform.js <binary>   (prints the platform; exit 1 if unknown)
"use strict";

const fs = require("node:fs");

function platformOf(path) {
  const fd = fs.openSync(path, "r");
  const head = Buffer.alloc(4096);
  const read = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  const bytes = head.subarray(0, read);
  if (bytes.length >= 20 && bytes.readUInt32BE(0) === 0x7f454c46) {
    const little = bytes[5] === 1;
    const machine = little ? bytes.readUInt16LE(18) : bytes.readUInt16BE(18);
    const arch = { 0x3e: "x64", 0xb7: "arm64" }[machine];
    return arch && `linux-${arch}`;
  }
  if (bytes.length >= 8 && bytes.readUInt32LE(0) === 0xfeedfacf) {
    const arch = { 0x01000007: "x64", 0x0100000c: "arm64" }[bytes.readUInt32LE(4)];
    return arch && `darwin-${arch}`;
  }
  if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0xcafebabe) {
    return "darwin-universal";
  }
  if (bytes.length >= 0x40 && bytes.toString("latin1", 0, 2) === "MZ") {
    const pe = bytes.readUInt32LE(0x3c);
    if (pe + 6 <= bytes.length && bytes.readUInt32BE(pe) === 0x50450000) {
      const arch = { 0x8664: "x64", 0xaa64: "arm64" }[bytes.readUInt16LE(pe + 4)];
      return arch && `win32-${arch}`;
    }
  }
  return undefined;
}

if (require.main === module) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write("usage: node binary-platform.js <binary>\n");
    process.exit(2);
  }
  let platform;
  try {
    platform = platformOf(path);
  } catch (error) {
    process.stderr.write(`cannot read ${path}: ${error.message}\n`);
    process.exit(1);
  }
  if (!platform) {
    process.stderr.write(
      `${path} is not a Linux, macOS or Windows executable for x64 or arm64 that this script knows\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`${platform}\n`);
}

module.exports = { platformOf };
