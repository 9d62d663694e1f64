import { parseParams } from '../params';

describe('parseParams', () => {
  it('reads one `name = value` a line, values kept as the text typed', () => {
    expect(parseParams('n_estimators = 200\nlearning_rate = 0.05\nseed=-1')).toEqual({
      n_estimators: '200',
      learning_rate: '0.05',
      seed: '-1'
    });
  });

  it('keeps strings verbatim, quotes, inner spaces and `=` included', () => {
    expect(
      parseParams('target = "churned"\nname = my model\nquery = a=b\ncsv = \'data/x.csv\'')
    ).toEqual({
      target: '"churned"',
      name: 'my model',
      query: 'a=b',
      csv: "'data/x.csv'"
    });
  });

  it('takes a space as the separator too, as `-p NAME VALUE` does', () => {
    expect(parseParams('depth 3\ntarget\tchurned')).toEqual({ depth: '3', target: 'churned' });
  });

  it('trims odd spacing and Windows line ends', () => {
    expect(parseParams('   depth   =   3   \r\n\tseed\t=\t7\t')).toEqual({ depth: '3', seed: '7' });
  });

  it('gives an empty value for `name =`', () => {
    expect(parseParams('label =\nother= ')).toEqual({ label: '', other: '' });
  });

  it('skips blank lines', () => {
    expect(parseParams('\n\n  \ndepth = 3\n\t\n')).toEqual({ depth: '3' });
    expect(parseParams('')).toEqual({});
  });

  it('skips lines that do not start with a Python name followed by = or a space', () => {
    expect(
      parseParams('1depth = 3\n= 4\n-x = 1\nalone\nna-me = 2\n# comment = 1\nok = yes')
    ).toEqual({ ok: 'yes' });
  });

  it('lets a later line win', () => {
    expect(parseParams('depth = 3\ndepth = 5')).toEqual({ depth: '5' });
  });
});
