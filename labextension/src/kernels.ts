/**
 * Which kernels and terminals hold GPU memory: the rows of the "Kernels on GPU" section (from
 * `GET kernels`), and what the status bar and a notebook's toolbar say (from the owners in the
 * samples the stream already brings, at no extra request).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { DevboxApi } from './api';
import { formatAge, formatBytes } from './format';
import { IGpu, IKernelGpu, IKernelsDocument, ProcessOwner } from './tokens';

/** One kernel, terminal or process that holds (or may hold) GPU memory. */
export interface IHolderRow {
  kind: 'kernel' | 'terminal' | 'process';
  /** Unique among the rows: `kernel:<id>`, `terminal:<name>`, `process:<pid>`. */
  key: string;
  /** What a person reads: the notebook's file name, `Terminal 1`, a command line. */
  label: string;
  /** The notebook (or console) path, for a kernel with a session. */
  path: string | null;
  /** The kernel id or terminal name, for the actions. */
  id: string;
  /** The kernelspec's name (kernels). */
  kernelName: string | null;
  /** `idle`, `busy`, … (kernels). */
  state: string | null;
  /** Seconds since the kernel's last message, while it is idle; otherwise `null`. */
  idleSeconds: number | null;
  /** Seconds it has held GPU memory. */
  holdingSeconds: number | null;
  /** One line per GPU: `GPU 0: 2.0 GiB`. */
  gpus: string[];
  /** Bytes held for certain, over the GPUs. */
  memory: number;
}

/** The last path segment: `work/train.ipynb` → `train.ipynb`. */
export function baseName(path: string): string {
  const parts = path.split('/').filter(p => p.length > 0);
  return parts.length > 0 ? parts[parts.length - 1] : path;
}

/** Whose a process is, in a few words. */
export function ownerLabel(owner: ProcessOwner): string {
  switch (owner.type) {
    case 'kernel':
      return owner.path
        ? baseName(owner.path)
        : `kernel ${owner.kernel_id.slice(0, 8)}`;
    case 'terminal':
      return `Terminal ${owner.name}`;
    case 'process':
      return owner.cmdline;
    default:
      return 'another user or container';
  }
}

/** `GPU 0: 2.0 GiB`, or `GPU 1: shared with eval.ipynb, 4.0 GiB together`. */
export function gpuUseText(gpu: IKernelGpu): string {
  if (gpu.memory !== null) {
    return `GPU ${gpu.index}: ${formatBytes(gpu.memory)}`;
  }
  const others = gpu.shared_with.map(ownerLabel);
  const together =
    gpu.shared_memory === null
      ? ''
      : `, ${formatBytes(gpu.shared_memory)} together`;
  return others.length > 0
    ? `GPU ${gpu.index}: shared with ${others.join(', ')}${together}`
    : `GPU ${gpu.index}: memory unknown`;
}

function heldSeconds(since: number | null, now: number): number | null {
  return since === null ? null : Math.max(0, now - since);
}

function held(gpus: IKernelGpu[]): number {
  return gpus.reduce((sum, g) => sum + (g.memory ?? 0), 0);
}

/**
 * The kernels, terminals and processes that hold GPU memory, most memory first.
 *
 * @param now - Unix seconds.
 */
export function holderRows(doc: IKernelsDocument, now: number): IHolderRow[] {
  const rows: IHolderRow[] = [];
  for (const kernel of doc.kernels) {
    if (kernel.gpus.length === 0) {
      continue;
    }
    const idle =
      kernel.execution_state === 'idle' && kernel.last_activity !== null
        ? Math.max(0, now - kernel.last_activity)
        : null;
    rows.push({
      kind: 'kernel',
      key: `kernel:${kernel.id}`,
      label: kernel.path
        ? baseName(kernel.path)
        : `${kernel.name} kernel ${kernel.id.slice(0, 8)}`,
      path: kernel.path,
      id: kernel.id,
      kernelName: kernel.name,
      state: kernel.execution_state,
      idleSeconds: idle,
      holdingSeconds: heldSeconds(kernel.gpu_since, now),
      gpus: kernel.gpus.map(gpuUseText),
      memory: held(kernel.gpus)
    });
  }
  for (const terminal of doc.terminals) {
    if (terminal.gpus.length === 0) {
      continue;
    }
    rows.push({
      kind: 'terminal',
      key: `terminal:${terminal.name}`,
      label: `Terminal ${terminal.name}`,
      path: null,
      id: terminal.name,
      kernelName: null,
      state: null,
      idleSeconds: null,
      holdingSeconds: heldSeconds(terminal.gpu_since, now),
      gpus: terminal.gpus.map(gpuUseText),
      memory: held(terminal.gpus)
    });
  }
  for (const process of doc.processes) {
    rows.push({
      kind: 'process',
      key: `process:${process.pid}`,
      label: process.cmdline,
      path: null,
      id: String(process.pid),
      kernelName: null,
      state: null,
      idleSeconds: null,
      holdingSeconds: heldSeconds(process.gpu_since, now),
      gpus: process.gpus.map(gpuUseText),
      memory: held(process.gpus)
    });
  }
  return rows.sort((a, b) => b.memory - a.memory);
}

/** `busy`, or `idle 12 min` (how long a kernel has been idle while it holds GPU memory). */
export function stateText(row: IHolderRow): string {
  if (row.state === null) {
    return '';
  }
  if (row.idleSeconds !== null) {
    return `idle ${formatAge(row.idleSeconds)}`;
  }
  return row.state;
}

/** The section's summary line: other containers' processes are counted, not named. */
export function kernelsSummary(
  doc: IKernelsDocument,
  rows: IHolderRow[]
): string {
  const kernels = rows.filter(r => r.kind === 'kernel').length;
  const parts = [
    kernels === 0
      ? 'No kernel holds GPU memory.'
      : `${kernels} kernel${kernels === 1 ? '' : 's'} hold${kernels === 1 ? 's' : ''} GPU memory.`
  ];
  const others = doc.gpus.reduce((sum, g) => sum + g.others, 0);
  if (others > 0) {
    const memory = doc.gpus.reduce((sum, g) => sum + (g.others_memory ?? 0), 0);
    parts.push(
      `${others} process${others === 1 ? '' : 'es'} of other users or containers (${formatBytes(memory)}).`
    );
  }
  const uncertain = doc.gpus.reduce((sum, g) => sum + g.uncertain, 0);
  if (uncertain > 0) {
    parts.push(
      `${uncertain} process${uncertain === 1 ? '' : 'es'} whose owner cannot be told for certain.`
    );
  }
  return parts.join(' ');
}

/** How many of this server's kernels hold GPU memory in a sample (the status bar's count). */
export function kernelsHoldingMemory(gpus: IGpu[]): number {
  const ids = new Set<string>();
  for (const gpu of gpus) {
    for (const process of gpu.processes ?? []) {
      if (process.owner?.type === 'kernel' && (process.used_memory ?? 0) > 0) {
        ids.add(process.owner.kernel_id);
      }
    }
  }
  return ids.size;
}

/** The GPU memory a kernel holds for certain in a sample; `null` when it holds none. */
export function kernelMemory(gpus: IGpu[], kernelId: string): number | null {
  let total: number | null = null;
  for (const gpu of gpus) {
    for (const process of gpu.processes ?? []) {
      if (
        process.owner?.type === 'kernel' &&
        process.owner.kernel_id === kernelId
      ) {
        total = (total ?? 0) + (process.used_memory ?? 0);
      }
    }
  }
  return total;
}

/** `GET kernels`, loaded on demand. */
export class KernelsModel {
  constructor(private _api: Pick<DevboxApi, 'getKernels'>) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get document(): IKernelsDocument | null {
    return this._document;
  }

  get error(): string {
    return this._error;
  }

  /** Load again (concurrent calls share one request). */
  load(): Promise<void> {
    if (!this._pending) {
      this._pending = this._load().finally(() => {
        this._pending = null;
      });
    }
    return this._pending;
  }

  private async _load(): Promise<void> {
    try {
      this._document = await this._api.getKernels();
      this._error = '';
    } catch (error) {
      this._error = `Cannot list the kernels: ${(error as Error).message}`;
    }
    this._changed.emit();
  }

  private _document: IKernelsDocument | null = null;
  private _error = '';
  private _pending: Promise<void> | null = null;
  private _changed = new Signal<this, void>(this);
}
