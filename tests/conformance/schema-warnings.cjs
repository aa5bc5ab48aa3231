// Compiles every tool schema handinger-mcp lists (the tools/list JSON file given as the
// argument) with the validator the TypeScript MCP SDK uses on tools/list, and fails if it
// prints a warning (`unknown format "uint64" ignored`, ...): clients built on the SDK, MCP
// Inspector among them, print those on every listing. Run by .ci/conformance.sh.
const fs = require("fs");
const { AjvJsonSchemaValidator } = require("@modelcontextprotocol/sdk/validation/ajv");

// `handinger-mcp tools` prints a tools/list result, `{"tools": [...]}`.
const tools = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).tools;
const warnings = [];
for (const level of ["warn", "log", "error"]) {
  console[level] = (...args) => warnings.push(args.join(" "));
}
const validator = new AjvJsonSchemaValidator();
for (const tool of tools) {
  for (const kind of ["inputSchema", "outputSchema"]) {
    if (tool[kind]) validator.getValidator(tool[kind]);
  }
}
process.stdout.write(`TypeScript SDK validator: ${tools.length} tools, ${warnings.length} warnings\n`);
if (warnings.length) {
  process.stdout.write(warnings.join("\n") + "\n");
  process.exit(1);
}
