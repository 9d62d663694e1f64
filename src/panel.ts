/**
 * The "nb2prod" side panel: pipeline, live check findings (with the import of foreign tags),
 * the suggestion of contract cells, settings and Build.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { Assist } from './assist';
import { fill, h } from './dom';
import { parseParams } from './params';
import {
  IBuildStarted,
  ICheckReport,
  IFinding,
  IJob,
  IJobList,
  post,
  RequestError,
  requestAPI
} from './request';
import { ROLES, roleOf } from './roles';
import { SettingsForm } from './settings';
import { stageSteps } from './stages';

const POLL_MS = 1000;

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** The side panel, following whichever notebook is current. */
export class Nb2prodPanel extends Widget {
  constructor(
    private readonly commands: CommandRegistry,
    private readonly checkDelay = 800
  ) {
    super();
    this.id = 'nb2prod-panel';
    this.addClass('jp-nb2prod-panel');
    this.title.caption = 'nb2prod';
    this.node.append(
      h('h2', {}, 'nb2prod'),
      this._notice,
      this._title,
      h('h3', {}, 'Pipeline'),
      this._pipeline,
      h('h3', {}, 'Problems'),
      this._findings,
      this._assist.importNode,
      h('h3', {}, 'Suggest'),
      this._assist.suggestNode,
      h('h3', {}, 'Settings'),
      this._form.node,
      h('h3', {}, 'Build'),
      this._params,
      this._buildButton,
      this._stages,
      this._log,
      this._result
    );
    this._params.placeholder = 'parameters for this build: name = value, one a line';
    this._params.rows = 2;
    this._buildButton.addEventListener('click', () => void this.build());
    this._form.changed = () => this.refreshSoon();
  }

  /** The notebook the panel shows. */
  get notebook(): NotebookPanel | null {
    return this._panel;
  }

  set notebook(panel: NotebookPanel | null) {
    if (panel === this._panel) {
      return;
    }
    this._panel?.model?.contentChanged.disconnect(this.refreshSoon, this);
    this._panel = panel;
    this._report = null;
    this._assist.notebook = panel;
    this._form.model = panel?.model ?? null;
    panel?.model?.contentChanged.connect(this.refreshSoon, this);
    fill(this._title, panel ? panel.context.path : 'Open a notebook to see its pipeline.');
    this._buildButton.disabled = !panel || this._building;
    this.render();
    if (panel) {
      void panel.context.ready.then(() => Promise.all([this.check(), this.resume(panel)]));
    }
  }

  /** Re-render now and re-check a little later, once typing pauses. */
  refreshSoon(): void {
    this.render();
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this.check(), this.checkDelay);
  }

  /** Run `check` on the notebook as it is in the editor (saved or not). */
  async check(): Promise<void> {
    const panel = this._panel;
    if (!panel?.model) {
      return;
    }
    try {
      const report = await post<ICheckReport>('check', {
        path: panel.context.path,
        content: panel.model.toJSON()
      });
      if (panel === this._panel) {
        this._report = report;
        this.notice('');
        this.render();
      }
    } catch (error) {
      this.notice(String((error as Error).message ?? error));
    }
  }

  /** Save the notebook, start a build and follow it to its end. */
  async build(): Promise<void> {
    const panel = this._panel;
    if (!panel || this._building) {
      return;
    }
    await this.building(async () => {
      await panel.context.save();
      try {
        const started = await post<IBuildStarted>('build', {
          path: panel.context.path,
          params: parseParams(this._params.value)
        });
        this.renderStages(started.job);
        await this.follow(started.id);
      } catch (error) {
        // Already building (another tab, or before a reload): follow that build instead.
        const running = error instanceof RequestError && error.status === 409;
        if (!running || typeof error.body.job !== 'string') {
          throw error;
        }
        await this.follow(error.body.job);
      }
    });
  }

  /**
   * Learn the pipeline's stages, showing them pending until a build runs, and follow a
   * build of `panel`'s notebook that is still running (after a page reload).
   */
  private async resume(panel: NotebookPanel): Promise<void> {
    const path = encodeURIComponent(panel.context.path);
    const answer = await requestAPI<IJobList>(`jobs?path=${path}`).catch(() => null);
    if (!answer) {
      return;
    }
    this._stageLabels = answer.stages ?? this._stageLabels;
    if (!this._building && !this._stagesShowJob) {
      this.renderStages(null);
    }
    const running = answer.jobs.find(
      job =>
        (job.kind ?? 'build') === 'build' && (job.state === 'queued' || job.state === 'running')
    );
    if (running && panel === this._panel && !this._building) {
      await this.building(() => this.follow(running.id));
    }
  }

  private async building(work: () => Promise<void>): Promise<void> {
    this._building = true;
    this._buildButton.disabled = true;
    fill(this._result);
    fill(this._log);
    this.renderStages(null);
    try {
      await work();
    } catch (error) {
      fill(
        this._result,
        h('div', { class: 'jp-nb2prod-build-error' }, String((error as Error).message))
      );
    } finally {
      this._building = false;
      this._buildButton.disabled = !this._panel;
    }
  }

  private async follow(id: string): Promise<void> {
    let since = 0;
    for (;;) {
      const job = await requestAPI<IJob>(`jobs/${id}?since=${since}`);
      since = job.log_length;
      this._log.append(...job.log.map(line => line + '\n'));
      this._log.scrollTop = this._log.scrollHeight;
      this.renderStages(job);
      if (job.state === 'succeeded' || job.state === 'failed') {
        this.renderResult(job);
        return;
      }
      await sleep(POLL_MS);
    }
  }

  private notice(message: string): void {
    fill(this._notice, message);
    this._notice.hidden = !message;
  }

  private render(): void {
    this.renderPipeline();
    this.renderFindings();
  }

  private renderPipeline(): void {
    const notebook = this._panel?.content;
    if (!notebook?.model) {
      fill(this._pipeline);
      return;
    }
    const byRole = new Map<string, number[]>(ROLES.map(role => [role, []]));
    notebook.widgets.forEach((cell, index) => {
      const role = roleOf(cell.model);
      if (role) {
        byRole.get(role)!.push(index);
      }
    });
    fill(
      this._pipeline,
      ...ROLES.map(role => {
        const cells = byRole.get(role)!;
        const links = cells.map(index => this.cellLink(index, null, `cell ${index}`));
        return h(
          'li',
          { class: `jp-nb2prod-stage jp-nb2prod-role-${role}`, 'data-role': role },
          h('span', { class: 'jp-nb2prod-chip' }, role),
          ...(links.length ? links : [h('span', { class: 'jp-nb2prod-none' }, 'no cell')])
        );
      })
    );
  }

  private renderFindings(): void {
    const report = this._report;
    if (!report) {
      fill(this._findings, h('li', { class: 'jp-nb2prod-none' }, 'Checking…'));
      return;
    }
    const { error, warning } = report.counts;
    const summary = h(
      'li',
      { class: 'jp-nb2prod-summary' },
      report.findings.length
        ? `${error} error(s), ${warning} warning(s)`
        : 'No problems: the notebook is ready to build.'
    );
    fill(this._findings, summary, ...report.findings.map(f => this.findingItem(f)));
    this._assist.offer(report.findings);
  }

  private findingItem(finding: IFinding): HTMLElement {
    // The panel is about one notebook: drop the "churn.ipynb: " that the CLI puts first.
    const name = this._panel?.context.path.split('/').pop() ?? '';
    const message = finding.message.startsWith(`${name}: `)
      ? finding.message.slice(name.length + 2)
      : finding.message;
    const item = h(
      'li',
      { class: `jp-nb2prod-finding jp-nb2prod-${finding.severity}`, title: finding.code },
      h('span', { class: 'jp-nb2prod-severity' }, finding.severity),
      ' ',
      message
    );
    if (finding.cell_index !== null) {
      item.dataset.cellIndex = String(finding.cell_index);
      item.addEventListener('click', () => this.goTo(finding.cell_index!, finding.cell_id));
    }
    return item;
  }

  private cellLink(index: number, id: string | null, text: string): HTMLElement {
    const link = h(
      'a',
      { class: 'jp-nb2prod-cell-link', href: '#', 'data-cell-index': String(index) },
      text
    );
    link.addEventListener('click', event => {
      event.preventDefault();
      event.stopPropagation();
      this.goTo(index, id);
    });
    return link;
  }

  /** Activate and scroll to a cell, by id when it still exists (cells may have moved). */
  private goTo(index: number, id: string | null): void {
    const notebook = this._panel?.content;
    if (!notebook) {
      return;
    }
    const byId = id ? notebook.widgets.findIndex(cell => cell.model.id === id) : -1;
    const target = byId >= 0 ? byId : index;
    if (target < 0 || target >= notebook.widgets.length) {
      return;
    }
    notebook.activeCellIndex = target;
    void notebook.scrollToItem(target);
    this._panel!.content.activate();
  }

  /** The build's steps as the server orders and labels them: `job`'s, else all pending. */
  private renderStages(job: IJob | null): void {
    if (job?.stage_labels) {
      this._stageLabels = job.stage_labels;
    }
    this._stagesShowJob = job !== null;
    fill(
      this._stages,
      ...stageSteps(this._stageLabels, job?.stages).map(({ name, label, state }) =>
        h('li', { class: `jp-nb2prod-step jp-mod-${state}`, 'data-stage': name }, label)
      )
    );
  }

  private renderResult(job: IJob): void {
    if (job.state === 'failed' || !job.result) {
      fill(
        this._result,
        h('div', { class: 'jp-nb2prod-build-error' }, job.error?.message ?? 'The build failed.')
      );
      return;
    }
    const result = job.result;
    const gates = new Map((result.gates ?? []).map(gate => [gate.metric, gate]));
    const metrics = Object.entries(result.metrics).map(([name, value]) => {
      const gate = gates.get(name);
      return h(
        'tr',
        {},
        h('td', {}, name),
        h('td', {}, Number(value).toFixed(4)),
        h('td', {}, gate ? `gate ${gate.bound} ${gate.passed ? 'passed' : 'failed'}` : '')
      );
    });
    const monitoring = result.monitoring_config
      ? this.fileLink('monitoring config', result.monitoring_config)
      : null;
    fill(
      this._result,
      h(
        'div',
        { class: 'jp-nb2prod-built' },
        'Built ',
        h('code', { class: 'jp-nb2prod-tag' }, result.tag)
      ),
      h('table', { class: 'jp-nb2prod-metrics' }, ...metrics),
      h('div', {}, this.fileLink('service.py', result.service_py)),
      monitoring ? h('div', {}, monitoring) : null,
      h('div', {}, 'Serve it: ', h('code', {}, result.serve_command))
    );
  }

  private fileLink(label: string, path: string): HTMLElement {
    if (path.startsWith('/')) {
      return h('span', {}, `${label}: `, h('code', {}, path));
    }
    const link = h('a', { class: 'jp-nb2prod-file-link', href: '#', title: path }, label);
    link.addEventListener('click', event => {
      event.preventDefault();
      void this.commands.execute('docmanager:open', { path });
    });
    return link;
  }

  private _panel: NotebookPanel | null = null;
  private _report: ICheckReport | null = null;
  private _timer = 0;
  private _building = false;
  /** The stages' labels in pipeline order, from the server's last answer (none before it). */
  private _stageLabels: Record<string, string> = {};
  private _stagesShowJob = false;
  private readonly _form = new SettingsForm();
  private readonly _assist = new Assist((index, id) => this.goTo(index, id));
  private readonly _notice = h('div', { class: 'jp-nb2prod-notice', hidden: '' });
  private readonly _title = h('div', { class: 'jp-nb2prod-notebook' });
  private readonly _pipeline = h('ol', { class: 'jp-nb2prod-pipeline' });
  private readonly _findings = h('ul', { class: 'jp-nb2prod-findings' });
  private readonly _params = h('textarea', { class: 'jp-nb2prod-params jp-mod-styled' });
  private readonly _buildButton = h(
    'button',
    { class: 'jp-nb2prod-build jp-mod-styled jp-mod-accept jp-Button' },
    'Build'
  );
  private readonly _stages = h('ol', { class: 'jp-nb2prod-steps' });
  private readonly _log = h('pre', { class: 'jp-nb2prod-log' });
  private readonly _result = h('div', { class: 'jp-nb2prod-result' });
}
