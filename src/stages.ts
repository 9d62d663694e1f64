/**
 * The build's steps as the server names and orders them.
 */

/** The state of one build stage. */
export type StageState = 'pending' | 'running' | 'done' | 'failed';

/** One step of the build, ready to show. */
export interface IStep {
  name: string;
  label: string;
  state: StageState;
}

/**
 * The steps to show: in the key order of `states` (a job's `stages`) when there is a job,
 * else of `labels`; each labelled from `labels` (its name when missing) and pending
 * unless `states` says otherwise.
 */
export function stageSteps(
  labels: Readonly<Record<string, string>>,
  states?: Readonly<Record<string, StageState>>
): IStep[] {
  return Object.keys(states ?? labels).map(name => ({
    name,
    label: labels[name] ?? name,
    state: states?.[name] ?? 'pending'
  }));
}
