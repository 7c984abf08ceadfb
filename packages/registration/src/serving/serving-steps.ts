import { InvalidOptionsError, type TelemetryOptions } from '@peerlb/registry';
import { instrumentation } from '@peerlb/registry/otel';
import { deadlineStep, type DeadlineOptions } from './deadline-step.js';
import { LoadReporter, loadReportStep, type LoadReportOptions } from './load-report.js';
import type { ServingStep } from './serving-step.js';
import { SERVING_SCOPE, servingVersion, telemetryStep } from './telemetry-step.js';

/** What the serving side does for each request. */
export interface ServingOptions {
  /**
   * Report this instance's event-loop load on every answer (`endpoint-load-metrics`, ORCA TEXT
   * form). Default on; `false` turns it off.
   */
  loadReport?: boolean | LoadReportOptions;
  /**
   * OpenTelemetry server span and `http.server.request.duration` per request. Default on when
   * `@opentelemetry/api` is installed and a tracer or meter provider was registered before the
   * wrapper is built; `{ tracerProvider, meterProvider }` to report elsewhere; `false` off.
   */
  telemetry?: boolean | TelemetryOptions;
  /**
   * Read the caller's remaining time (`x-peerlb-timeout`), answer 504 when none is left, and run
   * the handler inside the request's deadline (`currentDeadline()`). Default on; `false` turns
   * it off.
   */
  deadline?: boolean | DeadlineOptions;
}

/**
 * The built-in steps in the order they run. The load report comes first so every answer carries
 * it, including answers a later step gives itself; then the telemetry span; then the deadline.
 * New serving-side features add their step here.
 */
export function builtinSteps(options: ServingOptions): { steps: ServingStep[]; reporter: LoadReporter | undefined } {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('serving', 'must be an object');
  }
  const steps: ServingStep[] = [];
  let reporter: LoadReporter | undefined;
  const load = options.loadReport;
  if (load !== false) {
    if (load !== undefined && load !== true && (load === null || typeof load !== 'object')) {
      throw new InvalidOptionsError('serving.loadReport', 'must be true, false or an object');
    }
    reporter = new LoadReporter(load === undefined || load === true ? {} : load);
    steps.push(loadReportStep(reporter));
  }
  // After the load report (every answer carries it), before the user's steps: the span covers them.
  const otel = instrumentation(SERVING_SCOPE, servingVersion(), options.telemetry, 'serving.telemetry');
  if (otel !== undefined) steps.push(telemetryStep(otel));
  // After the span opens, so a request answered 504 for want of time is traced too.
  const deadline = options.deadline;
  if (deadline !== false) {
    if (deadline !== undefined && deadline !== true && (deadline === null || typeof deadline !== 'object')) {
      throw new InvalidOptionsError('serving.deadline', 'must be true, false or an object');
    }
    steps.push(deadlineStep(deadline === undefined || deadline === true ? {} : deadline));
  }
  return { steps, reporter };
}
