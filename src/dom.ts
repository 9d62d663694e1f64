/**
 * A tiny DOM helper, so the panel needs no framework.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value !== undefined) {
      node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null) {
      node.append(child);
    }
  }
  return node;
}

/** Replace all children of `node`. */
export function fill(node: HTMLElement, ...children: (Node | string | null)[]): void {
  node.replaceChildren(...children.filter((c): c is Node | string => c !== null));
}
