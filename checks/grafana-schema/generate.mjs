// Turns each dashboard JSON file into a TypeScript file typed against @grafana/schema, so `tsc`
// checks it: the dashboard model as a whole, and each panel's `options` and
// `fieldConfig.defaults.custom` against its panel type's own types (the dashboard model leaves
// both open). Also writes a tsconfig.json listing the files.
//
// usage: node generate.mjs [OUT_DIR [DASHBOARD.json...]]
//   default: generated/ and ../../dashboards/*.json

import { readFileSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const schema = join(here, "node_modules/@grafana/schema/dist/types/raw");

// Panel type (as a dashboard names it) -> its folder under raw/composable.
const PANELS = {
  timeseries: "timeseries",
  stat: "stat",
  bargauge: "bargauge",
  gauge: "gauge",
  heatmap: "heatmap",
  "state-timeline": "statetimeline",
  "status-history": "statushistory",
  table: "table",
  text: "text",
  piechart: "piechart",
  barchart: "barchart",
  histogram: "histogram",
  logs: "logs",
};

const [outArg, ...files] = process.argv.slice(2);
const out = resolve(outArg ?? join(here, "generated"));
const dashboards = files.length
  ? files.map((f) => resolve(f))
  : readdirSync(join(here, "../../dashboards"))
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => join(here, "../../dashboards", f));
if (dashboards.length === 0) fail("no dashboards to check");
mkdirSync(out, { recursive: true });

function fail(why) {
  console.error(`generate.mjs: ${why}`);
  process.exit(2);
}

/** Every panel, rows' nested panels included. */
function panels(list) {
  return (list ?? []).flatMap((p) => [p, ...panels(p.panels)]);
}

const literal = (v) => JSON.stringify(v, null, 2);
const outputs = [];
for (const file of dashboards) {
  let json;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`${file}: ${e.message}`);
  }
  const name = basename(file, ".json").replace(/[^A-Za-z0-9_]/g, "_");
  const used = new Set();
  const checks = [];
  (json.templating?.list ?? []).forEach((v, i) => {
    checks.push(`// variable ${i} ${JSON.stringify(v.name ?? "")}\nexport const variable_${i}: VariableJson = ${literal(v)};`);
  });
  (json.annotations?.list ?? []).forEach((a, i) => {
    checks.push(`// annotation ${i} ${JSON.stringify(a.name ?? "")}\nexport const annotation_${i}: AnnotationJson = ${literal(a)};`);
  });
  panels(json.panels).forEach((p, i) => {
    const where = `panel ${p.id} ${JSON.stringify(p.title ?? "")} (${p.type})`;
    if (p.type === "row") {
      const { panels: _nested, ...row } = p;
      checks.push(`// ${where}\nexport const row_${i}: RowJson = ${literal(row)};`);
      return;
    }
    checks.push(`// ${where}\nexport const panel_${i}: PanelJson = ${literal(p)};`);
    const folder = PANELS[p.type];
    if (!folder) fail(`${file}: panel ${p.id} has type ${JSON.stringify(p.type)}, which generate.mjs does not map to @grafana/schema yet`);
    const ns = folder;
    used.add(folder);
    if (p.options !== undefined) {
      checks.push(`// ${where}: options\nexport const panel_${i}_options: Checked<${ns}.Options> = ${literal(p.options)};`);
    }
    const custom = p.fieldConfig?.defaults?.custom;
    if (custom !== undefined) {
      checks.push(`// ${where}: fieldConfig.defaults.custom\nexport const panel_${i}_custom: Checked<${ns}.FieldConfig> = ${literal(custom)};`);
    }
  });
  const imports = [...used]
    .sort()
    .map((f) => `import type * as ${f} from ${JSON.stringify(join(schema, "composable", f, "panelcfg/x/types.gen"))};`);
  const text = [
    `// Generated from ${relative(root, file)} by checks/grafana-schema/generate.mjs: do not edit.`,
    `import type { AnnotationJson, Checked, DashboardJson, PanelJson, RowJson, VariableJson } from ${JSON.stringify(join(here, "schema"))};`,
    ...imports,
    "",
    `// The whole dashboard.\nexport const dashboard: DashboardJson = ${literal(json)};`,
    "",
    ...checks,
    "",
  ].join("\n");
  const target = join(out, `${name}.ts`);
  writeFileSync(target, text);
  outputs.push(target);
}

const tsconfig = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: "es2020",
    module: "commonjs",
    moduleResolution: "node10",
    ignoreDeprecations: "5.0",
    types: [],
    typeRoots: [],
    baseUrl: here,
    paths: { "@grafana/schema/*": [join(here, "node_modules/@grafana/schema/*")] },
  },
  files: outputs,
};
writeFileSync(join(out, "tsconfig.json"), literal(tsconfig) + "\n");
console.log(`generated ${outputs.length} file(s) in ${out}`);
