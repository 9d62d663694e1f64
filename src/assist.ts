/**
 * The panel's help for notebooks written without nb2prod: import Kale or nbdev tags, and
 * suggest the contract cells as a diff to accept or dismiss.
 *
 * Both put their result in the editor's model, never in the file: the user sees the change,
 * can undo it, and saves it.
 */
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';

import { diffLines, diffStats } from './diff';
import { fill, h } from './dom';
import { Dialect, foreignDialects, importLabel, reportRows } from './foreign';
import {
  IApplied,
  IFinding,
  IJob,
  ISuggestion,
  ISuggestStarted,
  ITagAnswer,
  NotebookContent,
  post,
  RequestError,
  requestAPI
} from './request';
import { cellsChanged, exampleText, noteWhere, summary } from './suggestion';

const POLL_MS = 1000;
const MARKS: Record<string, string> = { add: '+', del: '-', context: ' ' };

type GoTo = (index: number, id: string | null) => void;
type Content = Parameters<INotebookModel['fromJSON']>[0];

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** Replace the editor's notebook with `content` (it shows as unsaved, and can be undone). */
function replaceContent(panel: NotebookPanel, content: NotebookContent): void {
  panel.model!.fromJSON(content as unknown as Content);
}

/** The import offer (under Problems) and the Suggest section of the panel. */
export class Assist {
  /** The import buttons and the import's report; shown under the panel's Problems. */
  readonly importNode = h('div', { class: 'jp-nb2prod-import' });
  /** The Suggest section: the button, the job's progress, then the diff with Accept. */
  readonly suggestNode = h('div', { class: 'jp-nb2prod-suggest' });

  constructor(private readonly goTo: GoTo) {
    this._suggestButton.addEventListener('click', () => void this.suggest());
    this._accept.addEventListener('click', () => void this.accept());
    this._dismiss.addEventListener('click', () => this.dismiss());
    this.suggestNode.append(this._suggestButton, this._progress, this._log, this._view);
    this.importNode.append(this._offer, this._report);
    this.notebook = null;
  }

  /** The notebook the panel follows; switching drops what was shown for the last one. */
  set notebook(panel: NotebookPanel | null) {
    this._panel = panel;
    this._suggestion = null;
    this._dialects = [];
    fill(this._offer);
    fill(this._report);
    fill(this._progress);
    fill(this._log);
    fill(this._view);
    this._suggestButton.disabled = !panel || this._suggesting;
  }

  /** Offer the import of each dialect whose tags `check` found. */
  offer(findings: ReadonlyArray<IFinding>): void {
    const dialects = foreignDialects(findings);
    if (dialects.join() === this._dialects.join()) {
      return;
    }
    this._dialects = dialects;
    fill(
      this._offer,
      ...dialects.map(dialect => {
        const button = h(
          'button',
          {
            class: 'jp-nb2prod-import-tags jp-mod-styled jp-Button',
            'data-dialect': dialect
          },
          importLabel(dialect)
        );
        button.addEventListener('click', () => void this.importTags(dialect, button));
        return button;
      })
    );
  }

  /** Map the notebook's foreign tags to nb2prod roles, in the editor, and say what was done. */
  async importTags(dialect: Dialect, button?: HTMLButtonElement): Promise<void> {
    const panel = this._panel;
    if (!panel?.model) {
      return;
    }
    if (button) {
      button.disabled = true;
    }
    try {
      const answer = await post<ITagAnswer>('tag', {
        path: panel.context.path,
        content: panel.model.toJSON(),
        source: dialect
      });
      if (panel !== this._panel) {
        return;
      }
      replaceContent(panel, answer.content);
      this.renderReport(dialect, answer.report);
    } catch (error) {
      fill(this._report, h('div', { class: 'jp-nb2prod-build-error' }, message(error)));
    } finally {
      if (button) {
        button.disabled = false;
      }
    }
  }

  private renderReport(dialect: Dialect, report: Record<string, unknown>): void {
    const rows = reportRows(report);
    const mapped = rows.filter(row => row.mapped).length;
    const name = dialect === 'kale' ? 'Kale' : 'nbdev';
    const items = rows.map(row => {
      const where = row.index === null ? '' : `cell ${row.index}: `;
      const what = row.mapped
        ? `${row.written} → ${row.tag ?? 'untagged'}`
        : `${row.written} not mapped`;
      const item = h(
        'li',
        { class: `jp-nb2prod-report-row ${row.mapped ? 'jp-mod-mapped' : 'jp-mod-unmapped'}` },
        h('span', {}, where + what),
        row.reason ? h('span', { class: 'jp-nb2prod-reason' }, ` (${row.reason})`) : null
      );
      if (row.index !== null) {
        item.addEventListener('click', () => this.goTo(row.index!, row.id));
      }
      return item;
    });
    fill(
      this._report,
      h(
        'div',
        { class: 'jp-nb2prod-report-summary' },
        `Imported ${name} tags: ${mapped} cell(s) mapped, ${rows.length - mapped} not. ` +
          'Save the notebook to keep them.'
      ),
      h('ul', { class: 'jp-nb2prod-report' }, ...items)
    );
  }

  /** Start a suggestion of the contract cells, follow it, and show its diff. */
  async suggest(): Promise<void> {
    const panel = this._panel;
    if (!panel?.model || this._suggesting) {
      return;
    }
    this._suggesting = true;
    this._suggestButton.disabled = true;
    this._suggestion = null;
    fill(this._view);
    fill(this._log);
    const content = panel.model.toJSON() as unknown as NotebookContent;
    try {
      let id: string;
      try {
        id = (await post<ISuggestStarted>('suggest', { path: panel.context.path, content })).id;
      } catch (error) {
        // A suggestion for this notebook is being made already (another tab): follow it.
        const running = error instanceof RequestError && error.status === 409;
        if (!running || typeof error.body.job !== 'string') {
          throw error;
        }
        id = error.body.job;
      }
      const job = await this.follow(id);
      if (panel !== this._panel) {
        return;
      }
      if (job.state === 'failed' || !job.suggestion) {
        fill(this._progress);
        this.showError(job.error?.message ?? 'The suggestion failed.');
        return;
      }
      fill(this._progress);
      fill(this._log); // the log is for a failure; the diff says what was done
      this._suggestion = { content, suggestion: job.suggestion };
      this.renderSuggestion(job.suggestion);
    } catch (error) {
      fill(this._progress);
      this.showError(message(error));
    } finally {
      this._suggesting = false;
      this._suggestButton.disabled = !this._panel;
    }
  }

  private async follow(id: string): Promise<IJob> {
    const started = Date.now();
    let since = 0;
    for (;;) {
      const job = await requestAPI<IJob>(`jobs/${id}?since=${since}`);
      since = job.log_length;
      this._log.append(...job.log.map(line => line + '\n'));
      this._log.scrollTop = this._log.scrollHeight;
      if (job.state === 'succeeded' || job.state === 'failed') {
        return job;
      }
      const seconds = Math.round((Date.now() - started) / 1000);
      fill(
        this._progress,
        h(
          'span',
          { class: 'jp-nb2prod-step jp-mod-running' },
          job.state === 'queued' ? 'queued' : 'running the notebook'
        ),
        ` ${seconds} s`
      );
      await sleep(POLL_MS);
    }
  }

  private renderSuggestion(suggestion: ISuggestion): void {
    const lines = diffLines(suggestion.diff);
    const { added, removed } = diffStats(lines);
    const diff = h(
      'div',
      { class: 'jp-nb2prod-diff' },
      ...lines.map(line =>
        h(
          'div',
          { class: `jp-nb2prod-diff-line jp-mod-${line.kind}` },
          (MARKS[line.kind] ?? '') + line.text
        )
      )
    );
    fill(
      this._view,
      h('div', { class: 'jp-nb2prod-suggest-summary' }, summary(suggestion)),
      h('div', { class: 'jp-nb2prod-diff-stats' }, `+${added} −${removed} lines`),
      diff,
      this.renderNotes(suggestion),
      this.renderParity(suggestion),
      this.renderSettings(suggestion.settings),
      h('div', { class: 'jp-nb2prod-suggest-actions' }, this._accept, this._dismiss)
    );
  }

  private renderNotes(suggestion: ISuggestion): HTMLElement | null {
    if (!suggestion.notes.length) {
      return null;
    }
    const items = suggestion.notes.map(note => {
      const where = noteWhere(note);
      const item = h(
        'li',
        { class: `jp-nb2prod-note jp-mod-${note.kind}` },
        h('span', { class: 'jp-nb2prod-note-kind' }, note.kind),
        ' ',
        where ? `${where}: ` : '',
        note.text
      );
      if (note.cell_index !== null) {
        item.addEventListener('click', () => this.goTo(note.cell_index!, note.cell_id));
      }
      return item;
    });
    return h('div', {}, h('h4', {}, 'Notes'), h('ul', { class: 'jp-nb2prod-notes' }, ...items));
  }

  private renderParity(suggestion: ISuggestion): HTMLElement | null {
    const parity = suggestion.parity;
    if (!parity) {
      return null;
    }
    const differ = parity.columns.filter(column => column.differ > 0).length;
    const verdict = parity.ok
      ? `The suggested features match the original cells on all ${parity.rows} training rows` +
        (differ ? `, except for the deliberate changes below.` : '.')
      : `${differ} column(s) differ from the original cells on the ${parity.rows} training rows.`;
    const head = h(
      'tr',
      {},
      h('th', {}, 'column'),
      h('th', {}, 'rows differ'),
      h('th', {}, 'examples'),
      h('th', {}, 'why')
    );
    const rows = parity.columns.map(column =>
      h(
        'tr',
        { class: column.differ > 0 ? 'jp-mod-differ' : 'jp-mod-same' },
        h('td', {}, h('code', {}, column.column)),
        h('td', {}, `${column.differ} / ${column.rows}`),
        h('td', {}, column.examples.map(e => exampleText(e)).join('; ')),
        h('td', {}, column.reason ?? '')
      )
    );
    return h(
      'div',
      { class: `jp-nb2prod-parity ${parity.ok ? 'jp-mod-ok' : 'jp-mod-failed'}` },
      h('h4', {}, 'Feature parity'),
      h('div', { class: 'jp-nb2prod-parity-verdict' }, verdict),
      h('div', { class: 'jp-nb2prod-parity-scroll' }, h('table', {}, head, ...rows))
    );
  }

  private renderSettings(settings: Record<string, unknown>): HTMLElement | null {
    const entries = Object.entries(settings ?? {});
    if (!entries.length) {
      return null;
    }
    return h(
      'div',
      { class: 'jp-nb2prod-suggest-settings' },
      'Settings: ',
      ...entries.map(([key, value]) => h('code', {}, `${key} = ${JSON.stringify(value)}`))
    );
  }

  /** Put the suggested cells in the notebook; the cells they replace become skip cells. */
  async accept(): Promise<void> {
    const panel = this._panel;
    const made = this._suggestion;
    if (!panel?.model || !made) {
      return;
    }
    const now = panel.model.toJSON() as unknown as NotebookContent;
    if (cellsChanged(made.content, now)) {
      this.showError(
        'The notebook’s cells changed since the suggestion was made: suggest again.',
        true
      );
      return;
    }
    this._accept.disabled = true;
    try {
      const applied = await post<IApplied>('suggest/apply', {
        content: now,
        suggestion: made.suggestion
      });
      if (panel !== this._panel) {
        return;
      }
      replaceContent(panel, applied.content);
      this._suggestion = null;
      fill(
        this._view,
        h(
          'div',
          { class: 'jp-nb2prod-accepted' },
          `Accepted. ${summary(made.suggestion)} Save the notebook to keep it.`
        )
      );
    } catch (error) {
      this.showError(message(error), true);
    } finally {
      this._accept.disabled = false;
    }
  }

  /** Drop the suggestion; the notebook stays as it is. */
  dismiss(): void {
    this._suggestion = null;
    fill(this._view);
    fill(this._log);
  }

  private showError(text: string, keep = false): void {
    const node = h('div', { class: 'jp-nb2prod-build-error' }, text);
    if (keep) {
      this._view.querySelector('.jp-nb2prod-build-error')?.remove();
      this._view.prepend(node);
    } else {
      fill(this._view, node);
    }
  }

  private _panel: NotebookPanel | null = null;
  private _dialects: Dialect[] = [];
  private _suggesting = false;
  private _suggestion: { content: NotebookContent; suggestion: ISuggestion } | null = null;
  private readonly _offer = h('div', { class: 'jp-nb2prod-import-offer' });
  private readonly _report = h('div', { class: 'jp-nb2prod-import-report' });
  private readonly _suggestButton = h(
    'button',
    { class: 'jp-nb2prod-suggest-button jp-mod-styled jp-Button' },
    'Suggest contract cells'
  );
  private readonly _progress = h('div', { class: 'jp-nb2prod-suggest-progress' });
  private readonly _log = h('pre', { class: 'jp-nb2prod-suggest-log' });
  private readonly _view = h('div', { class: 'jp-nb2prod-suggestion' });
  private readonly _accept = h(
    'button',
    { class: 'jp-nb2prod-accept jp-mod-styled jp-mod-accept jp-Button' },
    'Accept'
  );
  private readonly _dismiss = h(
    'button',
    { class: 'jp-nb2prod-dismiss jp-mod-styled jp-mod-reject jp-Button' },
    'Dismiss'
  );
}

function message(error: unknown): string {
  return String((error as Error)?.message ?? error);
}
