/**
 * Foreign tags (Kale, nbdev): which import the panel offers, and the import's report as rows.
 */
import { IFinding } from './request';

/** The tag dialects `nb2prod tag --from` imports. */
export const DIALECTS = ['kale', 'nbdev'] as const;

export type Dialect = (typeof DIALECTS)[number];

/** The button's label for importing a dialect's tags. */
export function importLabel(dialect: Dialect): string {
  return dialect === 'kale' ? 'Import Kale tags' : 'Import nbdev tags';
}

/** The code of the check finding about tags nb2prod does not read. */
export const FOREIGN_TAGS = 'foreign-tags';

/**
 * The dialects whose tags `check` found (its `foreign-tags` findings), in a fixed order.
 *
 * A finding's message says whose tag it is ("has Kale's `skip` tag", "has nbdev's `#| export`
 * directive"); its `name` is the tag as written, and only nbdev's directives start with `#`.
 */
export function foreignDialects(findings: ReadonlyArray<IFinding>): Dialect[] {
  const found = new Set<Dialect>();
  for (const finding of findings) {
    if (finding.code !== FOREIGN_TAGS) {
      continue;
    }
    const said = DIALECTS.filter(d => new RegExp(`\\b${d}'s\\b`, 'i').test(finding.message));
    if (said.length) {
      said.forEach(d => found.add(d));
    } else if (finding.name) {
      found.add(finding.name.trim().startsWith('#') ? 'nbdev' : 'kale');
    }
  }
  return DIALECTS.filter(d => found.has(d));
}

/** One cell of the import's report, ready to show. */
export interface IReportRow {
  mapped: boolean;
  index: number | null;
  id: string | null;
  /** The foreign tag (or nbdev directive) as written. */
  written: string;
  /** The nb2prod tag written on the cell; null when it was left untagged (on purpose). */
  tag: string | null;
  reason: string;
}

type Json = Record<string, unknown>;

const text = (value: unknown): string | null => (typeof value === 'string' && value ? value : null);

function row(cell: Json, mapped: boolean): IReportRow {
  return {
    mapped,
    index: typeof cell.cell_index === 'number' ? cell.cell_index : null,
    id: text(cell.cell_id),
    written: text(cell.written) ?? '',
    tag: text(cell.tag),
    reason: text(cell.reason) ?? ''
  };
}

/**
 * `TagReport.to_dict()` (`mapped`: `{cell_index, cell_id, written, role, tag, reason}`,
 * `unmapped`: the same without a role) as rows: the mapped cells, then those not mapped,
 * each in cell order.
 */
export function reportRows(report: Json): IReportRow[] {
  const list = (key: string): Json[] =>
    Array.isArray(report[key]) ? (report[key] as unknown[]).filter(isObject) : [];
  const byIndex = (a: IReportRow, b: IReportRow) => (a.index ?? -1) - (b.index ?? -1);
  return [
    ...list('mapped')
      .map(cell => row(cell, true))
      .sort(byIndex),
    ...list('unmapped')
      .map(cell => row(cell, false))
      .sort(byIndex)
  ];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
