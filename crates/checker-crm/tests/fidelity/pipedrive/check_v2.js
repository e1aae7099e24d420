// Checks the local Pipedrive's API v2 replies with the official Pipedrive client (npm
// `pipedrive`, pinned in package.json): the client makes the calls (its paths, its `x-api-token`
// header, cursor paging through `additional_data.next_cursor`), and every reply is then
// type-checked by the TypeScript compiler against the client's own v2 models
// (`GetDealsResponse`, `GetPersonsResponse`, `GetPipelinesResponse`, `GetStagesResponse`):
// unknown keys, missing envelopes and wrong types are errors.
//
// usage: node check_v2.js <base url of the local pipedrive> <api token> <page size>
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const ts = require("typescript");
const v2 = require("pipedrive/v2");

async function main() {
  const [base, token, limitArg] = process.argv.slice(2);
  const limit = Number(limitArg || "2");
  const config = new v2.Configuration({ apiKey: token, basePath: `${base.replace(/\/$/, "")}/api/v2` });
  const replies = [];
  async function paged(model, fetch) {
    let cursor;
    let pages = 0;
    let items = 0;
    do {
      const r = await fetch(cursor);
      replies.push({ model, reply: r });
      pages += 1;
      items += (r.data || []).length;
      cursor = r.additional_data && r.additional_data.next_cursor;
      if (pages > 1000) throw new Error(`${model}: paging does not end`);
    } while (cursor);
    return { pages, items };
  }
  const deals = new v2.DealsApi(config);
  const persons = new v2.PersonsApi(config);
  const pipelines = new v2.PipelinesApi(config);
  const stages = new v2.StagesApi(config);
  const summary = {
    deals: await paged("GetDealsResponse", (cursor) =>
      deals.getDeals({ limit, cursor, sort_by: "add_time", sort_direction: "desc" })),
    persons: await paged("GetPersonsResponse", (cursor) => persons.getPersons({ limit, cursor })),
    pipelines: await paged("GetPipelinesResponse", (cursor) => pipelines.getPipelines({ limit, cursor })),
    stages: await paged("GetStagesResponse", (cursor) => stages.getStages({ limit, cursor })),
  };
  console.log("pipedrive v2 pages: " + JSON.stringify(summary));

  // Every reply as a typed constant: the compiler's excess-property and type checks do the rest.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fg-pipedrive-v2-"));
  const file = path.join(dir, "replies.ts");
  const models = [...new Set(replies.map((r) => r.model))];
  let src = `import type { ${models.join(", ")} } from "pipedrive/v2";\n`;
  replies.forEach((r, i) => {
    src += `export const reply${i}: ${r.model} = ${JSON.stringify(r.reply, null, 2)};\n`;
  });
  fs.writeFileSync(file, src);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2020,
    baseUrl: __dirname,
    typeRoots: [],
    types: [],
    paths: { "pipedrive/v2": [path.join(__dirname, "node_modules/pipedrive/dist/versions/v2/index.d.ts")] },
  });
  const diags = ts.getPreEmitDiagnostics(program);
  if (diags.length > 0) {
    for (const d of diags) {
      const where = d.file && d.start !== undefined
        ? d.file.getLineAndCharacterOfPosition(d.start) : null;
      const line = where ? src.split("\n")[where.line].trim() : "";
      console.log(`model mismatch: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")} (at: ${line})`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`${replies.length} replies match the official client's v2 models`);
  console.log("all pipedrive v2 fidelity checks passed");
}

main().catch((e) => {
  console.log(`pipedrive v2 check failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
