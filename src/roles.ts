/**
 * Cell roles: read and write the standard `metadata.tags` the way nb2prod reads them.
 */
import { ICellModel } from '@jupyterlab/cells';

/** The pipeline roles, in pipeline order (skip last: it never runs in a build). */
export const ROLES = ['parameters', 'schema', 'features', 'train', 'evaluate', 'skip'] as const;

export type Role = (typeof ROLES)[number];

/** What the role picker offers: every role, plus "none" to untag. */
export const CHOICES: ReadonlyArray<string> = [...ROLES, 'none'];

const PREFIX = 'nb2prod:';
const COMMENT_ROLE = /^\s*#\|\s*nb2prod\s*:\s*([\w:-]*)\s*$/;

/** The tag that carries a role: papermill's own `parameters`, else `nb2prod:<role>`. */
export function roleTag(role: Role): string {
  return role === 'parameters' ? role : PREFIX + role;
}

function isRole(value: string): value is Role {
  return (ROLES as ReadonlyArray<string>).includes(value);
}

function isRoleTag(tag: string): boolean {
  return tag === 'parameters' || tag.startsWith(PREFIX);
}

/** The string tags of a `metadata.tags` value; anything that is not a list counts as none. */
function tagList(tags: unknown): string[] {
  return Array.isArray(tags) ? tags.filter(t => typeof t === 'string') : [];
}

/**
 * A code cell's role from its `metadata.tags`, else from a `#| nb2prod: <role>` first line.
 *
 * The first tag that names a known role wins; unknown roles are ignored.
 */
export function roleFromTags(tags: unknown, source: string): Role | null {
  for (const tag of tagList(tags)) {
    const role = tag === 'parameters' ? tag : tag.slice(PREFIX.length);
    if (isRoleTag(tag) && isRole(role)) {
      return role;
    }
  }
  const first = source.replace(/^\n+/, '').split('\n', 1)[0];
  const match = COMMENT_ROLE.exec(first ?? '');
  const role = match ? match[1].replace(PREFIX, '') : '';
  return isRole(role) ? role : null;
}

/**
 * The tags that give a cell `role` ("none", or any unknown role, untags it): other role
 * tags go, unrelated tags stay in their order.
 */
export function tagsWithRole(tags: unknown, role: string): string[] {
  const kept = tagList(tags).filter(tag => !isRoleTag(tag));
  return isRole(role) ? [...kept, roleTag(role)] : kept;
}

/** A cell's role, or null for markdown and raw cells and untagged code cells. */
export function roleOf(model: ICellModel): Role | null {
  if (model.type !== 'code') {
    return null;
  }
  return roleFromTags(model.getMetadata('tags'), model.sharedModel.getSource());
}

/**
 * Give a cell `role` ("none" untags it): other role tags go, unrelated tags stay.
 */
export function setRole(model: ICellModel, role: string): void {
  const tags = tagsWithRole(model.getMetadata('tags'), role);
  if (tags.length) {
    model.setMetadata('tags', tags);
  } else {
    model.deleteMetadata('tags');
  }
}
