// openapi.yaml checks for the tests:
//   node check.mjs spec openapi.yaml            validates the document (OpenAPI 3.1 schema)
//   node check.mjs response openapi.yaml SCHEMA FILE.json...
//                                               validates responses against components.schemas.SCHEMA
//   node check.mjs operations openapi.yaml OP...
//                                               the server's operations have their routes, and only they
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { parse } from "yaml";

const [mode, specPath, schemaName, ...files] = process.argv.slice(2);
const doc = parse(readFileSync(specPath, "utf8"));

if (mode === "spec") {
  const v = new Validator();
  const res = await v.validate(doc);
  if (!res.valid) {
    console.error(JSON.stringify(res.errors, null, 2));
    process.exit(1);
  }
  console.log(`${specPath}: valid OpenAPI ${v.version}`);
} else if (mode === "operations") {
  // The server's operations (from its one table) against the paths here:
  // each has POST /v1/models/{name}/OP and POST /v1/OP, and no other such
  // path exists.
  const ops = [schemaName, ...files];
  const paths = Object.keys(doc.paths);
  let bad = 0;
  for (const op of ops)
    for (const p of [`/v1/models/{name}/${op}`, `/v1/${op}`])
      if (!doc.paths[p] || !doc.paths[p].post) {
        console.error(`openapi.yaml lacks POST ${p}`);
        bad++;
      }
  for (const p of paths) {
    const m = p.match(/^\/v1\/(?:models\/\{name\}\/)?([a-z]+)$/);
    if (m && m[1] !== "models" && doc.paths[p].post && !ops.includes(m[1])) {
      console.error(`openapi.yaml has POST ${p}, which the server does not offer`);
      bad++;
    }
  }
  if (!bad) console.log(`openapi.yaml: the server's ${ops.length} operations, each on both routes`);
  process.exit(bad ? 1 : 0);
} else if (mode === "response") {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  // Register the components so that #/components/schemas/... refs resolve.
  ajv.addSchema({ $id: "spec", components: doc.components });
  const validate = ajv.compile({ $ref: `spec#/components/schemas/${schemaName}` });
  let bad = 0;
  for (const f of files) {
    if (!validate(JSON.parse(readFileSync(f, "utf8")))) {
      console.error(`${f} does not match ${schemaName}: ${ajv.errorsText(validate.errors)}`);
      bad++;
    }
  }
  process.exit(bad ? 1 : 0);
} else {
  console.error("usage: check.mjs spec FILE | response FILE SCHEMA JSON... | operations FILE OP...");
  process.exit(2);
}
