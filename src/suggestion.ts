/**
 * A suggestion of contract cells, in the words and rows the panel shows.
 */
import { ISuggestion, ISuggestionNote, NotebookContent } from './request';

/** What each cell of a notebook is and holds, to tell whether it changed. */
export function cellTexts(content: Pick<NotebookContent, 'cells'>): string[] {
  return content.cells.map(cell => {
    const source = Array.isArray(cell.source) ? cell.source.join('') : String(cell.source ?? '');
    return `${String(cell.cell_type)}\u0000${source}`;
  });
}

/**
 * Whether the cells changed between the content a suggestion was made for and `now`:
 * then its cell indices may point at other cells, and it must be made again.
 */
export function cellsChanged(
  before: Pick<NotebookContent, 'cells'>,
  now: Pick<NotebookContent, 'cells'>
): boolean {
  const a = cellTexts(before);
  const b = cellTexts(now);
  return a.length !== b.length || a.some((text, i) => text !== b[i]);
}

/** One sentence on what Accept does: the cells it adds and the ones it turns into skip cells. */
export function summary(suggestion: Pick<ISuggestion, 'cells' | 'skipped'>): string {
  const count = suggestion.cells.length;
  const roles = suggestion.cells.map(cell => cell.role).filter((r): r is string => !!r);
  if (roles.length < count) {
    roles.push(`${count - roles.length} untagged`);
  }
  const added = count
    ? `Adds ${count} cell${count === 1 ? '' : 's'} (${roles.join(', ')})`
    : 'Adds no cells';
  const skipped = [...suggestion.skipped].sort((a, b) => a - b);
  const kept = skipped.length
    ? `; cell${skipped.length === 1 ? '' : 's'} ${skipped.join(', ')} ` +
      `become${skipped.length === 1 ? 's a skip cell' : ' skip cells'}: kept, never run.`
    : '.';
  return added + kept;
}

/** Where a note points, as "cell 4, line 2" (or "" for the notebook as a whole). */
export function noteWhere(note: Pick<ISuggestionNote, 'cell_index' | 'line'>): string {
  if (note.cell_index === null || note.cell_index === undefined) {
    return '';
  }
  return note.line ? `cell ${note.cell_index}, line ${note.line}` : `cell ${note.cell_index}`;
}

/** A parity example (a row's value before and after, or any JSON) as a short text. */
export function exampleText(example: unknown, limit = 60): string {
  const text = typeof example === 'string' ? example : (JSON.stringify(example) ?? String(example));
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}
