import { InvalidOptionsError } from '@peerlb/registry';
import { LoadReporter, loadReportStep, type LoadReportOptions } from './load-report.js';
import type { ServingStep } from './serving-middleware.js';

/** What the serving side does for each request. */
export interface ServingOptions {
  /**
   * Report this instance's event-loop load on every answer (`endpoint-load-metrics`, ORCA TEXT
   * form). Default on; `false` turns it off.
   */
  loadReport?: boolean | LoadReportOptions;
}

/**
 * The built-in steps in the order they run. The load report comes first so every answer carries
 * it, including answers a later step gives itself. New serving-side features add their step here.
 */
export function builtinSteps(options: ServingOptions): ServingStep[] {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('serving', 'must be an object');
  }
  const steps: ServingStep[] = [];
  const load = options.loadReport;
  if (load !== false) {
    if (load !== undefined && load !== true && (load === null || typeof load !== 'object')) {
      throw new InvalidOptionsError('serving.loadReport', 'must be true, false or an object');
    }
    steps.push(loadReportStep(new LoadReporter(load === undefined || load === true ? {} : load)));
  }
  return steps;
}
