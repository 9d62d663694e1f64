import { cellsChanged, exampleText, noteWhere, summary } from '../suggestion';

const nb = (...sources: (string | string[])[]) => ({
  cells: sources.map(source => ({ cell_type: 'code', source, metadata: {} }))
});

describe('cellsChanged', () => {
  it('sees no change when only outputs, metadata or the source’s form differ', () => {
    const before = nb('a = 1\nb = 2', 'model.fit(X, y)');
    const now = nb(['a = 1\n', 'b = 2'], 'model.fit(X, y)');
    now.cells[1].metadata = { tags: ['nb2prod:train'] };
    expect(cellsChanged(before, now)).toBe(false);
  });

  it('sees an edited, added, removed or retyped cell', () => {
    const before = nb('a = 1', 'b = 2');
    expect(cellsChanged(before, nb('a = 1', 'b = 3'))).toBe(true);
    expect(cellsChanged(before, nb('a = 1', 'b = 2', ''))).toBe(true);
    expect(cellsChanged(before, nb('a = 1'))).toBe(true);
    const markdown = nb('a = 1', 'b = 2');
    markdown.cells[1].cell_type = 'markdown';
    expect(cellsChanged(before, markdown)).toBe(true);
  });
});

describe('summary', () => {
  it('says which cells Accept adds and which originals it keeps as skip cells', () => {
    const cells = [
      { role: 'schema', source: '', insert_after_index: 2 },
      { role: 'features', source: '', insert_after_index: 2 }
    ];
    expect(summary({ cells, skipped: [5, 4] })).toBe(
      'Adds 2 cells (schema, features); cells 4, 5 become skip cells: kept, never run.'
    );
    expect(summary({ cells: cells.slice(1), skipped: [4] })).toBe(
      'Adds 1 cell (features); cell 4 becomes a skip cell: kept, never run.'
    );
    expect(summary({ cells: [], skipped: [] })).toBe('Adds no cells.');
  });

  it('counts the untagged cells (training code) after the roles', () => {
    const cells = [
      { role: null, source: 'X_raw = train_df.copy()', insert_after_index: 2 },
      { role: 'schema', source: '', insert_after_index: 2 },
      { role: null, source: 'X_train = features(X_raw)', insert_after_index: 5 },
      { role: 'train', source: '', insert_after_index: 5 }
    ];
    expect(summary({ cells, skipped: [5] })).toBe(
      'Adds 4 cells (schema, train, 2 untagged); cell 5 becomes a skip cell: kept, never run.'
    );
  });
});

describe('noteWhere', () => {
  it('names the cell and the line, or nothing for the notebook as a whole', () => {
    expect(noteWhere({ cell_index: 4, line: 2 })).toBe('cell 4, line 2');
    expect(noteWhere({ cell_index: 4, line: null })).toBe('cell 4');
    expect(noteWhere({ cell_index: null, line: null })).toBe('');
  });
});

describe('exampleText', () => {
  it('shows an example as JSON, cut to a length', () => {
    expect(exampleText({ row: 3, before: 29.7, after: 28 })).toBe(
      '{"row":3,"before":29.7,"after":28}'
    );
    expect(exampleText('x'.repeat(100), 10)).toBe('xxxxxxxxx…');
  });
});
