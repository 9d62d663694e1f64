import { stageSteps } from '../stages';

const LABELS = {
  check: 'check',
  train: 'train',
  lift: 'lift',
  test: 'property tests',
  bento: 'bento'
};

describe('stageSteps', () => {
  it('shows the server’s stages pending, in its order, before any build', () => {
    expect(stageSteps(LABELS)).toEqual([
      { name: 'check', label: 'check', state: 'pending' },
      { name: 'train', label: 'train', state: 'pending' },
      { name: 'lift', label: 'lift', state: 'pending' },
      { name: 'test', label: 'property tests', state: 'pending' },
      { name: 'bento', label: 'bento', state: 'pending' }
    ]);
  });

  it('shows nothing until the server has named the stages', () => {
    expect(stageSteps({})).toEqual([]);
  });

  it('takes each state from the job', () => {
    const states = {
      check: 'done',
      train: 'done',
      lift: 'running',
      test: 'pending',
      bento: 'pending'
    } as const;
    expect(stageSteps(LABELS, states).map(s => [s.name, s.label, s.state])).toEqual([
      ['check', 'check', 'done'],
      ['train', 'train', 'done'],
      ['lift', 'lift', 'running'],
      ['test', 'property tests', 'pending'],
      ['bento', 'bento', 'pending']
    ]);
  });

  it('follows the job’s order and stages, whatever order the labels came in', () => {
    const labels = { b: 'B stage', a: 'A stage', gone: 'old stage' };
    expect(stageSteps(labels, { a: 'failed', b: 'done', c: 'pending' })).toEqual([
      { name: 'a', label: 'A stage', state: 'failed' },
      { name: 'b', label: 'B stage', state: 'done' },
      { name: 'c', label: 'c', state: 'pending' }
    ]);
  });

  it('shows a new server stage without any change here', () => {
    const labels = { check: 'check', scan: 'security scan', bento: 'bento' };
    expect(stageSteps(labels).map(s => s.label)).toEqual(['check', 'security scan', 'bento']);
  });
});
