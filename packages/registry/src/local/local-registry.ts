import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  ClosedError,
  InvalidOptionsError,
  NotRegisteredError,
  RegistryUnavailableError,
  throwIfAborted,
} from '../errors.js';
import { startHttpCheckLoop, httpCheckUrl, type HttpCheckLoop } from '../checks/http-check.js';
import type {
  CallOptions,
  CheckStatus,
  HealthCheckSpec,
  HeartbeatOptions,
  ListOptions,
  Registry,
  RegistryLogger,
  ServiceInstance,
  ServiceInstanceInput,
  WatchHandle,
  WatchListener,
  WatchOptions,
} from '../types.js';
import {
  validateCheckSpec,
  validateFilter,
  validateInstanceId,
  validateInstanceInput,
  validateServiceName,
} from '../validate.js';
import { codeOf, openRegistryDirectory } from './directory.js';
import { DirectoryWatch } from './directory-watch.js';
import { FileProblems } from './file-problems.js';
import { RecordCache } from './record-cache.js';
import { WriteProbe } from './write-probe.js';
import { resolveLocalOptions, type LocalRegistryOptions } from './options.js';
import { readRecordFile, removeRecordFile, writeRecordFile } from './record-files.js';
import {
  MAX_OUTPUT_CHARS,
  buildRecord,
  httpLeaseMs,
  httpLeaseNeedsRenewal,
  recordFileName,
  shouldReap,
  type LocalRecord,
  type RecordOwner,
} from './record.js';
import { healthyInstances, readSnapshot } from './snapshot.js';

const STATUSES: readonly CheckStatus[] = ['passing', 'warning', 'critical'];

/** An instance this object registered and whose HTTP check it runs. */
interface OwnedInstance {
  readonly instance: ServiceInstance;
  loop: HttpCheckLoop | undefined;
  /** What the file says about the HTTP check, to rewrite only on change or lease renewal. */
  http:
    | {
        status: CheckStatus;
        expiresAt: number | null;
        intervalMs: number;
        timeoutMs: number;
        /** The last write failed: the file may not say this, so write again on the next result. */
        unsaved: boolean;
      }
    | undefined;
  /** The last write failure reported, so a lasting one is logged once and not on every poll. */
  lastWriteError: string | undefined;
}

/**
 * The embedded default registry: one directory, one JSON file per instance, shared by every
 * process of one user on one host, with no server.
 *
 * Health. A check starts critical, as in Consul. A TTL check passes until `expiresAt`, which each
 * heartbeat pushes forward. An HTTP check is run by the process that registered the instance (there
 * is no agent to run it), which writes each status change with a lease: a passing result is good
 * until `expiresAt`, renewed well before it runs out. If that process dies, its lease lapses and
 * every reader counts the check critical, so a crashed instance leaves the healthy set within
 * `2 * (interval + timeout)` plus a little slack. Readers, in any process, delete the files of
 * instances critical for longer than `deregisterCriticalAfterMs`.
 *
 * Writers. Each file is rewritten only by the process that registered the instance (register,
 * heartbeat, HTTP results) and removed by deregister or by the reaping above; within this object
 * the writes to one file are queued one after another. There is no cross-process lock: the
 * registrant is assumed to be the only one heartbeating its instance. Were two processes to update
 * one file at once, the later rename wins and the next heartbeat or lease renewal repairs the other.
 */
export class LocalRegistry implements Registry {
  readonly kind = 'local';
  readonly dir: string;
  private readonly rescanIntervalMs: number;
  private readonly logger: RegistryLogger;
  private readonly now: () => number;
  private readonly owner: RecordOwner;
  private readonly problems: FileProblems;
  private readonly cache = new RecordCache();
  private readonly probe: WriteProbe;
  private readonly owned = new Map<string, OwnedInstance>();
  private readonly queues = new Map<string, Promise<void>>();
  private directoryWatch: DirectoryWatch | undefined;
  private closed = false;

  constructor(options?: LocalRegistryOptions) {
    const resolved = resolveLocalOptions(options);
    this.dir = resolved.dir;
    this.rescanIntervalMs = resolved.rescanIntervalMs;
    this.logger = resolved.logger;
    this.now = resolved.now;
    this.owner = { pid: process.pid, hostname: hostname(), registry: randomUUID() };
    this.problems = new FileProblems(this.dir, this.logger);
    this.probe = new WriteProbe(this.dir);
  }

  async register(input: ServiceInstanceInput, check: HealthCheckSpec, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    const instance = validateInstanceInput(input);
    const spec = validateCheckSpec(check);
    const httpUrl = spec.http ? httpCheckUrl(spec.http.target, instance.address, instance.port) : undefined;
    await this.serial(instance.id, async () => {
      this.assertOpen();
      throwIfAborted(options.signal);
      await openRegistryDirectory(this.dir, true);
      const existing = await readRecordFile(this.dir, recordFileName(instance.id));
      const record = buildRecord({
        instance,
        check: spec,
        httpUrl,
        owner: this.owner,
        now: this.now(),
        previous: existing.kind === 'record' ? existing.record : undefined,
      });
      await this.write(record);
      this.forget(instance.id);
      // close() ran while we wrote: the file stays (close never deregisters), but no check loop
      // may start after close.
      this.assertOpen();
      const http = record.checks.http;
      const entry: OwnedInstance = {
        instance,
        loop: undefined,
        http: http && {
          status: http.status,
          expiresAt: http.expiresAt,
          intervalMs: http.intervalMs,
          timeoutMs: http.timeoutMs,
          unsaved: false,
        },
        lastWriteError: undefined,
      };
      this.owned.set(instance.id, entry);
      if (http) {
        entry.loop = startHttpCheckLoop({
          url: http.url,
          intervalMs: http.intervalMs,
          timeoutMs: http.timeoutMs,
          onResult: (status, output) => this.onHttpResult(entry, status, output),
        });
      }
    });
  }

  async deregister(id: string, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateInstanceId(id);
    this.forget(id);
    await this.serial(id, async () => {
      // Again: a register queued before this one may have started a loop meanwhile.
      this.forget(id);
      if ((await openRegistryDirectory(this.dir, false)) === undefined) return;
      try {
        await removeRecordFile(this.dir, recordFileName(id));
      } catch (cause) {
        throw new RegistryUnavailableError(`cannot remove instance ${id} from ${this.dir}: ${codeOf(cause)}`, { cause });
      }
    });
  }

  /**
   * Renews the TTL check. For an instance with only an HTTP check it just confirms the file is
   * still there: that is how a registrant notices the directory was wiped and registers again.
   */
  async heartbeat(id: string, options: HeartbeatOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateInstanceId(id);
    const status = options.status ?? 'passing';
    if (!STATUSES.includes(status)) {
      throw new InvalidOptionsError('status', `must be passing, warning or critical, got ${JSON.stringify(status)}`);
    }
    if (options.note !== undefined && typeof options.note !== 'string') {
      throw new InvalidOptionsError('note', 'must be a string');
    }
    const output = (options.note ?? '').slice(0, MAX_OUTPUT_CHARS);
    await this.serial(id, async () => {
      this.assertOpen();
      throwIfAborted(options.signal);
      const { record, ino } = await this.readRegistered(id);
      const now = this.now();
      // No agent reaps here, so the registrant's own heartbeat enforces deregisterCriticalAfter
      // too (readers do it as well): an instance critical for too long learns it was forgotten.
      // Only a critical status counts, not a lapsed lease: we are its owner and alive, so a lapse
      // means our writes failed (a full disk), and removing the record would turn a registry that
      // cannot be written into an instance that is gone.
      if (shouldReap(record, now, false)) {
        await removeRecordFile(this.dir, recordFileName(id), ino).catch(() => {});
        this.forget(id);
        throw new NotRegisteredError(id);
      }
      const ttl = record.checks.ttl;
      if (!ttl) return;
      record.checks.ttl = {
        ...ttl,
        status,
        output,
        since: status === ttl.status ? ttl.since : now,
        expiresAt: now + ttl.ttlMs,
      };
      await this.write(record);
    });
  }

  async list(service: string, options: ListOptions = {}): Promise<ServiceInstance[]> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateServiceName(service);
    const filter = validateFilter(options.filter, 'filter');
    const snapshot = await readSnapshot(this.dir, this.problems, this.now, this.cache, this.probe);
    throwIfAborted(options.signal);
    return healthyInstances(snapshot, service, filter, this.logger);
  }

  async services(options: CallOptions = {}): Promise<string[]> {
    this.assertOpen();
    throwIfAborted(options.signal);
    const snapshot = await readSnapshot(this.dir, this.problems, this.now, this.cache, this.probe);
    throwIfAborted(options.signal);
    return [...new Set(snapshot.records.map((r) => r.instance.service))].sort();
  }

  watch(service: string, listener: WatchListener, options: WatchOptions = {}): WatchHandle {
    this.assertOpen();
    validateServiceName(service);
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'must be a function');
    const filter = validateFilter(options.filter, 'filter');
    this.directoryWatch ??= new DirectoryWatch({
      dir: this.dir,
      rescanIntervalMs: this.rescanIntervalMs,
      logger: this.logger,
      snapshot: () => readSnapshot(this.dir, this.problems, this.now, this.cache, this.probe, true),
      invalidate: () => this.cache.invalidate(),
    });
    return this.directoryWatch.add(service, filter, listener);
  }

  /** Stops watches and HTTP check loops and waits for writes in flight. Registrations stay. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.owned.values()) entry.loop?.stop();
    this.owned.clear();
    this.directoryWatch?.closeAll();
    await Promise.allSettled([...this.queues.values()]);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('LocalRegistry');
  }

  private forget(id: string, only?: OwnedInstance): void {
    const entry = this.owned.get(id);
    if (entry === undefined || (only !== undefined && entry !== only)) return;
    entry.loop?.stop();
    this.owned.delete(id);
  }

  /** Runs `task` after every earlier task for the same id: read-modify-write must not interleave. */
  private serial(id: string, task: () => Promise<void>): Promise<void> {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.catch(() => {});
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return run;
  }

  private async write(record: LocalRecord): Promise<void> {
    try {
      await writeRecordFile(this.dir, record);
    } catch (cause) {
      if (cause instanceof InvalidOptionsError) throw cause;
      throw new RegistryUnavailableError(
        `cannot write instance ${record.instance.id} to ${this.dir}: ${codeOf(cause)}`,
        { cause },
      );
    }
  }

  private async readRegistered(id: string): Promise<{ record: LocalRecord; ino: number }> {
    if ((await openRegistryDirectory(this.dir, false)) === undefined) throw new NotRegisteredError(id);
    const outcome = await readRecordFile(this.dir, recordFileName(id));
    if (outcome.kind !== 'record') throw new NotRegisteredError(id);
    return outcome;
  }

  /** Called by the check loop after every poll; must not throw (the loop does not catch). */
  private onHttpResult(entry: OwnedInstance, status: CheckStatus, output: string): void {
    const id = entry.instance.id;
    const known = entry.http;
    if (this.owned.get(id) !== entry || this.closed || known === undefined) return;
    const checkedAt = this.now();
    // Nothing to write while the status holds and the lease has time left; a critical check
    // needs no lease at all.
    const unchanged = status === known.status && !known.unsaved;
    if (unchanged && (status === 'critical' || !httpLeaseNeedsRenewal(known, checkedAt))) return;
    // Noted before the write lands, so results arriving while it is in flight do not queue
    // duplicates; a failed write marks it unsaved so the next result writes again.
    const planned = {
      ...known,
      status,
      expiresAt: checkedAt + httpLeaseMs(known.intervalMs, known.timeoutMs),
      unsaved: false,
    };
    entry.http = planned;
    this.serial(id, async () => {
      if (this.owned.get(id) !== entry || this.closed) return;
      if ((await openRegistryDirectory(this.dir, false)) === undefined) return this.forget(id, entry);
      const outcome = await readRecordFile(this.dir, recordFileName(id));
      // Gone (wiped, reaped, deregistered elsewhere) or taken over by another registrant: stop
      // checking. The registrant's next heartbeat gets NotRegisteredError and registers again.
      const record = outcome.kind === 'record' ? outcome.record : undefined;
      const http = record?.checks.http;
      if (record === undefined || http === undefined || record.owner.registry !== this.owner.registry) {
        return this.forget(id, entry);
      }
      record.checks.http = {
        ...http,
        status,
        output: output.slice(0, MAX_OUTPUT_CHARS),
        since: status === http.status ? http.since : checkedAt,
        expiresAt: planned.expiresAt,
      };
      await this.write(record);
      entry.lastWriteError = undefined;
    }).catch((err: unknown) => {
      if (entry.http === planned) entry.http = { ...planned, unsaved: true };
      const message = (err as Error)?.message ?? String(err);
      if (entry.lastWriteError === message) return;
      entry.lastWriteError = message;
      this.logger.warn(`local registry: could not record the HTTP check result of ${id}: ${message}`, { instanceId: id });
    });
  }
}
