import { CHOICES, ROLES, roleFromTags, roleTag, tagsWithRole } from '../roles';

describe('roleTag', () => {
  it('uses papermill’s own tag for parameters and nb2prod:<role> for the rest', () => {
    expect(ROLES.map(roleTag)).toEqual([
      'parameters',
      'nb2prod:schema',
      'nb2prod:features',
      'nb2prod:train',
      'nb2prod:evaluate',
      'nb2prod:skip'
    ]);
  });

  it('offers every role and then "none" in the picker', () => {
    expect(CHOICES).toEqual([...ROLES, 'none']);
  });
});

describe('roleFromTags', () => {
  it('reads a role from nb2prod:<role> and from the parameters tag', () => {
    expect(roleFromTags(['nb2prod:train'], '')).toBe('train');
    expect(roleFromTags(['parameters'], '')).toBe('parameters');
    expect(roleFromTags(['hide-input', 'nb2prod:features', 'slow'], '')).toBe('features');
  });

  it('takes the first tag that names a known role', () => {
    expect(roleFromTags(['nb2prod:schema', 'nb2prod:train'], '')).toBe('schema');
    expect(roleFromTags(['parameters', 'nb2prod:skip'], '')).toBe('parameters');
  });

  it('ignores unknown roles and look-alike tags', () => {
    expect(roleFromTags(['nb2prod:bogus'], '')).toBeNull();
    expect(roleFromTags(['nb2prod:bogus', 'nb2prod:evaluate'], '')).toBe('evaluate');
    expect(roleFromTags(['train', 'nb2prod:', 'nb2prod:nb2prod:train'], '')).toBeNull();
    expect(roleFromTags(['Nb2prod:train', 'nb2prod:Train'], '')).toBeNull();
  });

  it('also reads parameters written as nb2prod:parameters, as the Python side does', () => {
    expect(roleFromTags(['nb2prod:parameters'], '')).toBe('parameters');
  });

  it('treats missing or malformed tags as none', () => {
    expect(roleFromTags(undefined, 'x = 1')).toBeNull();
    expect(roleFromTags('nb2prod:train', '')).toBeNull();
    expect(roleFromTags([42, null, 'nb2prod:skip'], '')).toBe('skip');
  });

  it('reads a `#| nb2prod: <role>` first line when no tag names a role', () => {
    expect(roleFromTags([], '#| nb2prod: train\nmodel.fit(X, y)')).toBe('train');
    expect(roleFromTags([], '#|nb2prod:schema')).toBe('schema');
    expect(roleFromTags([], '  #|   nb2prod  :  evaluate  \nscore()')).toBe('evaluate');
    expect(roleFromTags([], '\n\n#| nb2prod: features\n')).toBe('features');
    expect(roleFromTags([], '#| nb2prod: nb2prod:skip')).toBe('skip');
    expect(roleFromTags(['other'], '#| nb2prod: parameters')).toBe('parameters');
  });

  it('lets a role tag win over the comment', () => {
    expect(roleFromTags(['nb2prod:train'], '#| nb2prod: schema')).toBe('train');
  });

  it('reads the comment only on the first line after empty ones, and only known roles', () => {
    expect(roleFromTags([], 'import x\n#| nb2prod: train')).toBeNull();
    expect(roleFromTags([], '  \n#| nb2prod: train')).toBeNull();
    expect(roleFromTags([], '#| nb2prod: bogus')).toBeNull();
    expect(roleFromTags([], '#| nb2prod:')).toBeNull();
    expect(roleFromTags([], '# nb2prod: train')).toBeNull();
    expect(roleFromTags([], '#| nb2prod: train  # trailing comment')).toBeNull();
    expect(roleFromTags([], '')).toBeNull();
  });
});

describe('tagsWithRole', () => {
  it('adds the role’s tag after the unrelated tags', () => {
    expect(tagsWithRole(['slow', 'hide-input'], 'train')).toEqual([
      'slow',
      'hide-input',
      'nb2prod:train'
    ]);
    expect(tagsWithRole(undefined, 'parameters')).toEqual(['parameters']);
  });

  it('replaces every other role tag, known or not', () => {
    expect(
      tagsWithRole(['parameters', 'keep', 'nb2prod:schema', 'nb2prod:bogus'], 'evaluate')
    ).toEqual(['keep', 'nb2prod:evaluate']);
    expect(tagsWithRole(['nb2prod:train'], 'train')).toEqual(['nb2prod:train']);
  });

  it('untags with "none" (or an unknown role) and keeps unrelated tags', () => {
    expect(tagsWithRole(['a', 'nb2prod:train', 'b', 'parameters'], 'none')).toEqual(['a', 'b']);
    expect(tagsWithRole(['nb2prod:skip'], 'none')).toEqual([]);
    expect(tagsWithRole(['a', 'nb2prod:skip'], 'bogus')).toEqual(['a']);
  });

  it('drops tags that are not strings', () => {
    expect(tagsWithRole(['a', 3, null], 'skip')).toEqual(['a', 'nb2prod:skip']);
    expect(tagsWithRole({ tags: 'x' }, 'none')).toEqual([]);
  });

  it('round-trips with roleFromTags for every role', () => {
    for (const role of ROLES) {
      expect(roleFromTags(tagsWithRole(['x', 'nb2prod:train'], role), '')).toBe(role);
    }
    expect(roleFromTags(tagsWithRole(['nb2prod:train'], 'none'), '')).toBeNull();
  });
});
