/**
 * The one place that calls the nb2prod server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { StageState } from './stages';

/** What to do when the server extension is missing or disabled. */
export const SERVER_FIX =
  'The nb2prod server extension is not enabled: run `pip install nb2prod` ' +
  '(or `jupyter server extension enable nb2prod`) and restart JupyterLab.';

/** An error from the server, with its JSON body when it sent one. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: Record<string, unknown> = {}
  ) {
    super(message);
  }
}

/**
 * Call `/nb2prod/<endPoint>` and parse its JSON answer.
 *
 * A 404 on the routes themselves means the server extension is not there, and turns into
 * an error that gives the fix.
 */
export async function requestAPI<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'nb2prod', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new RequestError(`The Jupyter server cannot be reached: ${error}`, 0);
  }
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = {};
  }
  if (response.status === 404 && !('error' in body)) {
    throw new RequestError(SERVER_FIX, 404, body);
  }
  if (!response.ok) {
    const message =
      typeof body.message === 'string'
        ? body.message
        : `The nb2prod server extension failed (${response.status} ${response.statusText}); ` +
          'the Jupyter server log says why.';
    throw new RequestError(message, response.status, body);
  }
  return body as T;
}

/** POST a JSON body. */
export function post<T>(endPoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endPoint, { method: 'POST', body: JSON.stringify(body) });
}

/** One finding, as `nb2prod check --json` prints it. */
export interface IFinding {
  code: string;
  severity: 'error' | 'warning' | 'info';
  message: string;
  cell_index: number | null;
  cell_id: string | null;
  line: number | null;
  name: string | null;
  role: string | null;
}

/** The answer of `POST /nb2prod/check`: the `nb2prod check --json` report. */
export interface ICheckReport {
  notebook: string;
  ok: boolean;
  counts: { error: number; warning: number; info: number };
  findings: IFinding[];
  pipeline: { role: string; cell_index: number; cell_id: string }[];
  settings: Record<string, unknown>;
}

/** What a finished build gives (paths inside the server root are root-relative). */
export interface IBuildResult {
  tag: string;
  version: string;
  metrics: Record<string, number>;
  bento_path: string;
  build_dir: string;
  service_py: string;
  monitoring_config: string | null;
  serve_command: string;
  gates?: { metric: string; bound: string; passed: boolean }[];
}

/** The answer of `GET /nb2prod/jobs/<id>`: a build, or a suggestion of contract cells. */
export interface IJob {
  id: string;
  /** `build` or `suggest` (older servers send no kind: a build). */
  kind?: 'build' | 'suggest';
  notebook: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed';
  stage: string | null;
  /** Each stage's state, in pipeline order. */
  stages: Record<string, StageState>;
  /** Each stage's label, e.g. `{"test": "property tests"}`. */
  stage_labels: Record<string, string>;
  log: string[];
  log_offset: number;
  log_length: number;
  result: IBuildResult | null;
  /** A suggest job's suggestion, once it succeeded. */
  suggestion?: ISuggestion | null;
  error: { error: string; message: string } | null;
}

/** The answer of `POST /nb2prod/build`. */
export interface IBuildStarted {
  id: string;
  job: IJob;
}

/** The answer of `GET /nb2prod/jobs[?path=]`: jobs newest first, and the pipeline's stages. */
export interface IJobList {
  jobs: IJob[];
  /** Each stage's label, in pipeline order, for showing the steps before any build. */
  stages: Record<string, string>;
}

/** A notebook's JSON, as the editor's model gives it and takes it back. */
export type NotebookContent = Record<string, unknown> & { cells: Record<string, unknown>[] };

/** The answer of `POST /nb2prod/tag`: the notebook with nb2prod roles, and what was mapped. */
export interface ITagAnswer {
  content: NotebookContent;
  /** `TagReport.to_dict()`. */
  report: Record<string, unknown>;
}

/** One cell `nb2prod suggest` proposes, inserted after the cell at `insert_after_index`. */
export interface ISuggestedCell {
  /** Its nb2prod role; null for an untagged cell (training code, such as the raw frame). */
  role: string | null;
  source: string;
  insert_after_index: number;
}

/** Something the suggestion says about a cell: a lifted statistic, a rule it changed, a gap. */
export interface ISuggestionNote {
  kind: string;
  cell_index: number | null;
  cell_id: string | null;
  line: number | null;
  text: string;
}

/** The feature-parity check of one column: how many rows the suggestion changes, and why. */
export interface IParityColumn {
  column: string;
  differ: number;
  rows: number;
  examples: unknown[];
  reason: string | null;
}

/** `Suggestion.to_dict()`: the contract cells `nb2prod suggest` proposes, as a diff. */
export interface ISuggestion {
  notebook: string;
  cells: ISuggestedCell[];
  /** The original cells that become skip cells on Accept. */
  skipped: number[];
  /** Original cells that get a role (`{cell_index, role}`). */
  tags?: { cell_index: number; role: string }[];
  settings: Record<string, unknown>;
  notes: ISuggestionNote[];
  parity: { columns: IParityColumn[]; rows: number; ok: boolean } | null;
  diff: string;
}

/** The answer of `POST /nb2prod/suggest`. */
export interface ISuggestStarted {
  id: string;
  job: IJob;
}

/** The answer of `POST /nb2prod/suggest/apply`. */
export interface IApplied {
  content: NotebookContent;
}
