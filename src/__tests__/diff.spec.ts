import { diffLines, diffStats } from '../diff';

const DIFF = [
  '--- churn.ipynb',
  '+++ churn.ipynb (suggested)',
  '@@ -3,3 +3,4 @@',
  ' # cell 4',
  '-for frame in [train_df, test_df]:',
  '+def features(df: DataFrame[Raw]) -> DataFrame[Features]:',
  '+    df = df.copy()',
  '     frame["fare"] = frame["fare"].fillna(train_df["fare"].median())',
  ''
].join('\n');

describe('diffLines', () => {
  it('gives each line its kind, its text without the marker, and its line numbers', () => {
    expect(diffLines(DIFF)).toEqual([
      { kind: 'file', text: '--- churn.ipynb', old: null, new: null },
      { kind: 'file', text: '+++ churn.ipynb (suggested)', old: null, new: null },
      { kind: 'hunk', text: '@@ -3,3 +3,4 @@', old: null, new: null },
      { kind: 'context', text: '# cell 4', old: 3, new: 3 },
      { kind: 'del', text: 'for frame in [train_df, test_df]:', old: 4, new: null },
      {
        kind: 'add',
        text: 'def features(df: DataFrame[Raw]) -> DataFrame[Features]:',
        old: null,
        new: 4
      },
      { kind: 'add', text: '    df = df.copy()', old: null, new: 5 },
      {
        kind: 'context',
        text: '    frame["fare"] = frame["fare"].fillna(train_df["fare"].median())',
        old: 5,
        new: 6
      }
    ]);
  });

  it('reads a removed "-- x" and an added "++ y" inside a hunk as lines, not file names', () => {
    const lines = diffLines('@@ -1 +1 @@\n--- x\n+++ y\n');
    expect(lines.map(line => [line.kind, line.text])).toEqual([
      ['hunk', '@@ -1 +1 @@'],
      ['del', '-- x'],
      ['add', '++ y']
    ]);
  });

  it('takes an empty line inside a hunk as context whose space was stripped', () => {
    const lines = diffLines('@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n');
    expect(lines.map(line => line.kind)).toEqual(['hunk', 'context', 'context', 'del', 'add']);
    expect(lines[2]).toEqual({ kind: 'context', text: '', old: 2, new: 2 });
  });

  it('starts the next hunk and file after one ends', () => {
    const text = [
      '@@ -1 +1,2 @@',
      ' a',
      '+b',
      '\\ No newline at end of file',
      '--- other',
      '+++ other',
      '@@ -10,0 +11 @@',
      '+z'
    ].join('\n');
    expect(diffLines(text).map(line => [line.kind, line.old, line.new])).toEqual([
      ['hunk', null, null],
      ['context', 1, 1],
      ['add', null, 2],
      ['meta', null, null],
      ['file', null, null],
      ['file', null, null],
      ['hunk', null, null],
      ['add', null, 11]
    ]);
  });

  it('shows text that is no diff as it is', () => {
    expect(diffLines('')).toEqual([]);
    expect(diffLines('no changes\r\n')).toEqual([
      { kind: 'meta', text: 'no changes', old: null, new: null }
    ]);
  });
});

describe('diffStats', () => {
  it('counts the added and the removed lines', () => {
    expect(diffStats(diffLines(DIFF))).toEqual({ added: 2, removed: 1 });
  });
});
