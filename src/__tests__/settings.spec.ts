import { formatGates, parseGates } from '../settings';

describe('parseGates', () => {
  it('reads one `metric rule` a line', () => {
    expect(parseGates('roc_auc >= 0.80\nrmse < 3.5')).toEqual({
      roc_auc: '>= 0.80',
      rmse: '< 3.5'
    });
  });

  it('needs no space between the metric and its rule', () => {
    expect(parseGates('roc_auc>=0.8')).toEqual({ roc_auc: '>=0.8' });
    expect(parseGates('f1!=0')).toEqual({ f1: '!=0' });
  });

  it('trims odd spacing around the metric and the rule, and inside keeps it', () => {
    expect(parseGates('   roc_auc    >=   0.80   \n\trmse\t<\t3 ')).toEqual({
      roc_auc: '>=   0.80',
      rmse: '<\t3'
    });
  });

  it('skips blank and whitespace-only lines, and Windows line ends', () => {
    expect(parseGates('\n\nroc_auc >= 0.8\n   \n\t\nf1 > 0.5\r\n')).toEqual({
      roc_auc: '>= 0.8',
      f1: '> 0.5'
    });
    expect(parseGates('')).toEqual({});
    expect(parseGates('  \n \n')).toEqual({});
  });

  it('skips a line with a rule and no metric', () => {
    expect(parseGates('>= 0.8\n< 1\nf1 > 0.5')).toEqual({ f1: '> 0.5' });
  });

  it('keeps a metric typed without a rule whole, with an empty rule', () => {
    expect(parseGates('roc_auc')).toEqual({ roc_auc: '' });
    expect(parseGates('roc_auc   \nf1 > 0.5')).toEqual({ roc_auc: '', f1: '> 0.5' });
  });

  it('keeps the last rule when a metric comes twice', () => {
    expect(parseGates('f1 > 0.5\nf1 > 0.7')).toEqual({ f1: '> 0.7' });
  });
});

describe('formatGates', () => {
  it('writes one `metric rule` a line, in order', () => {
    expect(formatGates({ roc_auc: '>= 0.80', rmse: '< 3.5' })).toBe('roc_auc >= 0.80\nrmse < 3.5');
  });

  it('gives an empty text for no gates or a value that is not an object', () => {
    expect(formatGates({})).toBe('');
    expect(formatGates(undefined)).toBe('');
    expect(formatGates(null)).toBe('');
    expect(formatGates('roc_auc >= 0.8')).toBe('');
  });

  it('round-trips with parseGates', () => {
    const gates = { roc_auc: '>= 0.80', rmse: '< 3.5', f1: '> 0.5' };
    expect(parseGates(formatGates(gates))).toEqual(gates);
    const text = 'roc_auc >= 0.80\nrmse < 3.5';
    expect(formatGates(parseGates(text))).toBe(text);
    expect(formatGates(parseGates('  roc_auc>=0.8  \n\n'))).toBe('roc_auc >=0.8');
  });
});
