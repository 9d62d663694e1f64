/**
 * nb2prod for JupyterLab: cell roles from the cell toolbar, role chips, and the side panel.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { trackRoles } from './chips';
import { Nb2prodPanel } from './panel';
import { CHOICES, roleOf, setRole } from './roles';

const PLUGIN_ID = 'nb2prod:plugin';

namespace CommandIDs {
  export const pickRole = 'nb2prod:pick-role';
  export const setRole = 'nb2prod:set-role';
  export const openPanel = 'nb2prod:open-panel';
  export const build = 'nb2prod:build';
}

const pipelineSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><circle cx="5" cy="6" r="3"/><circle cx="5" cy="18" r="3"/>
<circle cx="19" cy="12" r="3"/><path d="M7.5 7.2l9 3.6-.7 1.8-9-3.6zM7.5 16.8l8.3-4.4.9 1.7-8.3 4.4z"/></g></svg>`;

export const nb2prodIcon = new LabIcon({ name: 'nb2prod:pipeline', svgstr: pipelineSvg });

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Tag cells with nb2prod roles, see the pipeline and its problems, and build.',
  autoStart: true,
  requires: [INotebookTracker, ILabShell],
  optional: [ISettingRegistry, ICommandPalette, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    shell: ILabShell,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands } = app;
    const settings = settingRegistry
      ? await settingRegistry.load(PLUGIN_ID).catch(() => null)
      : null;
    const delay = (settings?.composite.checkDelay as number | undefined) ?? 800;

    const panel = new Nb2prodPanel(commands, delay);
    panel.title.icon = nb2prodIcon;
    shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, 'nb2prod-panel');

    const activeModel = () => tracker.activeCell?.model ?? null;
    const refreshToolbar = () => commands.notifyCommandChanged(CommandIDs.pickRole);

    commands.addCommand(CommandIDs.setRole, {
      label: args => (args.role === 'none' ? 'No nb2prod role' : `nb2prod role: ${args.role}`),
      caption: 'Set the nb2prod role of the active cell',
      isEnabled: () => activeModel()?.type === 'code',
      execute: args => {
        const model = activeModel();
        if (model && model.type === 'code') {
          setRole(model, String(args.role ?? 'none'));
        }
      }
    });

    commands.addCommand(CommandIDs.pickRole, {
      label: args => {
        if (!args.toolbar) {
          return 'Set the nb2prod role…';
        }
        const model = activeModel();
        return `role: ${(model && roleOf(model)) ?? 'none'}`;
      },
      caption: 'Set this cell’s nb2prod role',
      isVisible: () => activeModel()?.type === 'code',
      execute: async () => {
        const model = activeModel();
        if (!model || model.type !== 'code') {
          return;
        }
        const current = roleOf(model) ?? 'none';
        const result = await InputDialog.getItem({
          title: 'nb2prod role of this cell',
          items: [...CHOICES],
          current: CHOICES.indexOf(current)
        });
        if (result.button.accept && result.value) {
          setRole(model, result.value);
          refreshToolbar();
        }
      }
    });

    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show the nb2prod panel',
      execute: () => shell.activateById(panel.id)
    });

    commands.addCommand(CommandIDs.build, {
      label: 'Build with nb2prod',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        shell.activateById(panel.id);
        await panel.build();
      }
    });

    if (palette) {
      const category = 'nb2prod';
      palette.addItem({ command: CommandIDs.openPanel, category });
      palette.addItem({ command: CommandIDs.build, category });
      palette.addItem({ command: CommandIDs.pickRole, category });
      for (const role of CHOICES) {
        palette.addItem({ command: CommandIDs.setRole, args: { role }, category });
      }
    }

    tracker.widgetAdded.connect((_, notebook) => trackRoles(notebook, refreshToolbar));
    tracker.currentChanged.connect((_, notebook) => {
      panel.notebook = notebook;
      refreshToolbar();
    });
    tracker.activeCellChanged.connect(refreshToolbar);
    tracker.selectionChanged.connect(refreshToolbar);
    panel.notebook = tracker.currentWidget;
  }
};

export default plugin;
