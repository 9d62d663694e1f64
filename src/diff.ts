/**
 * A unified diff (as `nb2prod suggest` prints it) read into lines the panel can colour.
 */

/** What a line of a unified diff is. */
export type DiffKind = 'file' | 'hunk' | 'add' | 'del' | 'context' | 'meta';

/** One line of a diff, ready to show: its kind, its text, and its line numbers. */
export interface IDiffLine {
  kind: DiffKind;
  text: string;
  /** The line's number in the old text (`del`, `context`), else null. */
  old: number | null;
  /** The line's number in the new text (`add`, `context`), else null. */
  new: number | null;
}

const HUNK = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/**
 * The lines of a unified diff, each with its kind.
 *
 * Inside a hunk, lines are counted against the hunk's header, so a removed line that
 * reads `-- x` or an added `++ y` is still a removal or an addition, not a file header.
 * Outside hunks, `---`/`+++` lines name the files and anything else is `meta`.
 */
export function diffLines(text: string): IDiffLine[] {
  const lines: IDiffLine[] = [];
  let oldLeft = 0;
  let newLeft = 0;
  let oldNo = 0;
  let newNo = 0;
  const raw = text.replace(/\r\n/g, '\n').replace(/\n$/, '');
  if (!raw) {
    return lines;
  }
  for (const line of raw.split('\n')) {
    if (oldLeft > 0 || newLeft > 0) {
      const first = line.charAt(0);
      if (first === '+' && newLeft > 0) {
        lines.push({ kind: 'add', text: line.slice(1), old: null, new: newNo++ });
        newLeft--;
        continue;
      }
      if (first === '-' && oldLeft > 0) {
        lines.push({ kind: 'del', text: line.slice(1), old: oldNo++, new: null });
        oldLeft--;
        continue;
      }
      if ((first === ' ' || line === '') && oldLeft > 0 && newLeft > 0) {
        // An empty line is a context line whose leading space an editor stripped.
        lines.push({ kind: 'context', text: line.slice(1), old: oldNo++, new: newNo++ });
        oldLeft--;
        newLeft--;
        continue;
      }
      if (first === '\\') {
        lines.push({ kind: 'meta', text: line, old: null, new: null });
        continue;
      }
      // The hunk was shorter than its header said: read on as outside a hunk.
      oldLeft = newLeft = 0;
    }
    const hunk = HUNK.exec(line);
    if (hunk) {
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[3]);
      oldLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      newLeft = hunk[4] === undefined ? 1 : Number(hunk[4]);
      lines.push({ kind: 'hunk', text: line, old: null, new: null });
    } else if (line.startsWith('--- ') || line.startsWith('+++ ')) {
      lines.push({ kind: 'file', text: line, old: null, new: null });
    } else {
      lines.push({ kind: 'meta', text: line, old: null, new: null });
    }
  }
  return lines;
}

/** How many lines a diff adds and removes. */
export function diffStats(lines: ReadonlyArray<IDiffLine>): { added: number; removed: number } {
  return {
    added: lines.filter(line => line.kind === 'add').length,
    removed: lines.filter(line => line.kind === 'del').length
  };
}
