import { foreignDialects, importLabel, reportRows } from '../foreign';
import { IFinding } from '../request';

const finding = (code: string, message: string, name: string | null): IFinding => ({
  code,
  severity: 'warning',
  message,
  cell_index: 2,
  cell_id: 'index-2',
  line: null,
  name,
  role: 'untagged'
});

// As nb2prod/notebook/foreign.py words them.
const KALE_SKIP = finding(
  'foreign-tags',
  "nb.ipynb: cell 3 (id index-3, untagged): has Kale's `skip` tag (and `#| hide`), which " +
    'nb2prod does not read, so this cell would run during training; `nb2prod tag nb.ipynb ' +
    '--from kale` tags it nb2prod:skip (Kale leaves it out of the pipeline).',
  'skip'
);
const NBDEV_EXPORT = finding(
  'foreign-tags',
  "nb.ipynb: cell 2 (id index-2, untagged) line 1: has nbdev's `#| export` directive, which " +
    'nb2prod does not read; `nb2prod tag nb.ipynb --from nbdev` tags it nb2prod:features.',
  '#| export'
);

describe('foreignDialects', () => {
  it('offers the import of each dialect that check found, Kale first', () => {
    const other = finding('undefined-name', "cell 4 uses `kale`, Kale's name", 'kale');
    expect(foreignDialects([NBDEV_EXPORT, other, KALE_SKIP, KALE_SKIP])).toEqual(['kale', 'nbdev']);
    expect(foreignDialects([NBDEV_EXPORT])).toEqual(['nbdev']);
  });

  it('goes by the tag as written when the message names no dialect', () => {
    expect(foreignDialects([finding('foreign-tags', 'cell 1', 'step:train')])).toEqual(['kale']);
    expect(foreignDialects([finding('foreign-tags', 'cell 1', '#| hide')])).toEqual(['nbdev']);
  });

  it('offers nothing without foreign-tags findings', () => {
    expect(foreignDialects([finding('undefined-name', "Kale's and nbdev's", null)])).toEqual([]);
  });

  it('labels the buttons by dialect', () => {
    expect(importLabel('kale')).toBe('Import Kale tags');
    expect(importLabel('nbdev')).toBe('Import nbdev tags');
  });
});

describe('reportRows', () => {
  it('lists the mapped cells, then those not mapped, each in cell order', () => {
    // The shape of TagReport.to_dict() (nb2prod/notebook/tagging.py).
    const report = {
      notebook: 'nb.ipynb',
      dialect: 'kale',
      mapped: [
        {
          cell_index: 6,
          cell_id: 'c6',
          written: 'pipeline-metrics',
          role: 'evaluate',
          reason: "Kale's pipeline metrics",
          tag: 'nb2prod:evaluate'
        },
        {
          cell_index: 0,
          cell_id: 'c0',
          written: 'imports',
          role: null,
          reason: 'Kale prepends it to every step',
          tag: null
        }
      ],
      unmapped: [
        { cell_index: 3, cell_id: 'c3', written: 'prev:load', reason: 'Kale step metadata' }
      ],
      written: null
    };
    expect(reportRows(report)).toEqual([
      {
        mapped: true,
        index: 0,
        id: 'c0',
        written: 'imports',
        tag: null,
        reason: 'Kale prepends it to every step'
      },
      {
        mapped: true,
        index: 6,
        id: 'c6',
        written: 'pipeline-metrics',
        tag: 'nb2prod:evaluate',
        reason: "Kale's pipeline metrics"
      },
      {
        mapped: false,
        index: 3,
        id: 'c3',
        written: 'prev:load',
        tag: null,
        reason: 'Kale step metadata'
      }
    ]);
  });

  it('takes a report with nothing to map, or lists that are not lists', () => {
    expect(reportRows({ mapped: [], unmapped: 'none' })).toEqual([]);
  });
});
