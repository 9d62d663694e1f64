/**
 * The notebook settings form: edits `metadata.nb2prod` of the open notebook.
 */
import { INotebookModel } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { h } from './dom';

type Settings = Record<string, unknown>;

/**
 * `roc_auc >= 0.80` lines <-> `{"roc_auc": ">= 0.80"}`. A metric without a rule is kept with
 * an empty rule, so the build names it instead of the form dropping what was typed.
 */
export function parseGates(text: string): Record<string, string> {
  const gates: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([^\s<>=!]+)\s*(.*?)\s*$/.exec(line);
    if (match) {
      gates[match[1]] = match[2];
    }
  }
  return gates;
}

export function formatGates(gates: unknown): string {
  if (!gates || typeof gates !== 'object') {
    return '';
  }
  return Object.entries(gates as Record<string, unknown>)
    .map(([name, rule]) => `${name} ${rule}`)
    .join('\n');
}

/** Name, entry point and gates; other `nb2prod` settings are kept as they are. */
export class SettingsForm {
  readonly node = h('form', { class: 'jp-nb2prod-settings' });
  changed: () => void = () => undefined;

  constructor() {
    this.name.placeholder = 'notebook file name';
    this.entrypoint.placeholder = 'features';
    this.gates.placeholder = 'roc_auc >= 0.80';
    this.gates.rows = 2;
    this.node.append(
      h('label', {}, 'Name', this.name),
      h('label', {}, 'Entry point', this.entrypoint),
      h('label', {}, 'Gates (metric rule, one a line)', this.gates)
    );
    this.node.addEventListener('submit', event => event.preventDefault());
    for (const input of [this.name, this.entrypoint, this.gates]) {
      input.addEventListener('change', () => this.save());
    }
  }

  set model(model: INotebookModel | null) {
    this._model?.metadataChanged.disconnect(this.load, this);
    this._model = model;
    model?.metadataChanged.connect(this.load, this);
    this.load();
    for (const input of [this.name, this.entrypoint, this.gates]) {
      input.disabled = !model;
    }
  }

  private current(): Settings {
    const value = this._model?.getMetadata('nb2prod');
    return value && typeof value === 'object' ? { ...(value as Settings) } : {};
  }

  /** Show the model's settings, except in the field the user is typing in. */
  private load(): void {
    const settings = this.current();
    const show = (input: HTMLInputElement | HTMLTextAreaElement, value: string) => {
      if (document.activeElement !== input) {
        input.value = value;
      }
    };
    show(this.name, typeof settings.name === 'string' ? settings.name : '');
    show(this.entrypoint, typeof settings.entrypoint === 'string' ? settings.entrypoint : '');
    show(this.gates, formatGates(settings.gates));
  }

  /** Write the form into `metadata.nb2prod`; empty fields fall back to the defaults. */
  private save(): void {
    if (!this._model) {
      return;
    }
    const settings = this.current();
    const set = (key: string, value: unknown, empty: boolean) => {
      if (empty) {
        delete settings[key];
      } else {
        settings[key] = value;
      }
    };
    set('name', this.name.value.trim(), !this.name.value.trim());
    set('entrypoint', this.entrypoint.value.trim(), !this.entrypoint.value.trim());
    const gates = parseGates(this.gates.value);
    set('gates', gates, !Object.keys(gates).length);
    if (Object.keys(settings).length) {
      this._model.setMetadata('nb2prod', settings as ReadonlyPartialJSONObject);
    } else {
      this._model.deleteMetadata('nb2prod');
    }
    this.changed();
  }

  private _model: INotebookModel | null = null;
  private readonly name = h('input', { class: 'jp-mod-styled', name: 'name' });
  private readonly entrypoint = h('input', { class: 'jp-mod-styled', name: 'entrypoint' });
  private readonly gates = h('textarea', { class: 'jp-mod-styled', name: 'gates' });
}
