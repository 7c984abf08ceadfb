export {
  TIMEOUT_HEADER,
  DEFAULT_MAX_TIMEOUT_MS,
  MAX_TIMEOUT_VALUES,
  parseTimeout,
  formatTimeout,
} from './timeout-header.js';
export { RequestDeadline } from './request-deadline.js';
export { currentDeadline, runWithDeadline, timeLeftMs } from './deadline-context.js';
