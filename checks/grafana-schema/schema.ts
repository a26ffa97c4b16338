// The types a dashboard JSON file is checked against: Grafana's own published model
// (@grafana/schema, the classic dashboard and each panel's options and field config), read the
// way Grafana writes JSON. generate.mjs imports these into one .ts file per dashboard.

import type {
  AnnotationQuery,
  Dashboard,
  Panel,
  RowPanel,
  VariableModel,
} from "@grafana/schema/dist/types/raw/dashboard/x/types.gen";

/**
 * `T` as JSON holds it: Grafana leaves defaults out, so every field is optional, and writes a
 * string enum as its value ("line", not DrawStyle.Line), so a string enum becomes the union of
 * its values. Numeric enums stay as they are (JSON has the number, and TypeScript refuses a
 * number that is not a member). Object types stay closed: an object literal with a key the type
 * lacks is an error ("excess property"), so a misspelled key fails.
 */
export type Checked<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Checked<U>>
      : T extends object
        ? { [K in keyof T]?: Checked<T[K]> }
        : T;

// The allow-list: fields Grafana itself saves that the schema does not declare. Keep it short,
// and say where each comes from.

/** A query variable: Grafana's query editor saves the query's text as `definition`. */
interface VariableExtras {
  definition?: string;
}

/**
 * A Prometheus annotation: the Prometheus data source's annotation editor saves its query on the
 * annotation itself (`expr`, with `step`, the title/text templates, the label keys used as tags,
 * and whether the sample's value is its time), not under `target`.
 */
interface PrometheusAnnotationExtras {
  expr?: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

/** The dashboard model with the allow-list's fields added where Grafana writes them. */
type DashboardAsWritten = Omit<Dashboard, "templating" | "annotations"> & {
  templating?: { list?: Array<VariableModel & VariableExtras> };
  annotations?: { list?: Array<AnnotationQuery & PrometheusAnnotationExtras> };
};

/** A whole dashboard file. */
export type DashboardJson = Checked<DashboardAsWritten>;

// Its parts, each checked on its own as well: TypeScript reports one unknown key per object
// literal, so one slip cannot hide another in a different panel, variable or annotation.
export type PanelJson = Checked<Panel>;
export type RowJson = Checked<RowPanel>;
export type VariableJson = Checked<VariableModel & VariableExtras>;
export type AnnotationJson = Checked<AnnotationQuery & PrometheusAnnotationExtras>;
