/**
 * Role chips: a CSS class per role on each cell node; the chip and border are pure CSS.
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import { ROLES, roleOf } from './roles';

const CLASSES = ROLES.map(role => `jp-nb2prod-role-${role}`);

/** Mark every cell of `panel` with its role's class (and clear stale ones). */
export function paintRoles(panel: NotebookPanel): void {
  for (const cell of panel.content.widgets) {
    const role = roleOf(cell.model);
    const wanted = role ? `jp-nb2prod-role-${role}` : null;
    for (const name of CLASSES) {
      cell.node.classList.toggle(name, name === wanted);
    }
    cell.node.classList.toggle('jp-nb2prod-tagged', wanted !== null);
    if (role) {
      cell.node.dataset.nb2prodRole = role;
    } else {
      delete cell.node.dataset.nb2prodRole;
    }
  }
}

/** Keep `panel`'s chips current as cells and their tags change. */
export function trackRoles(panel: NotebookPanel, after: () => void = () => undefined): void {
  let timer = 0;
  const soon = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      paintRoles(panel);
      after();
    }, 50);
  };
  void panel.context.ready.then(() => {
    paintRoles(panel);
    panel.model?.contentChanged.connect(soon);
    panel.content.modelContentChanged.connect(soon);
  });
}
