/**
 * The JSON payloads of the gpu-devbox REST API and push stream, as described by the server's
 * OpenAPI document (`gpu_devbox/server/openapi.json`). Units are in the names or the comments:
 * bytes, watts, °C, MHz, bytes/s, percent. A value the GPU cannot report is `null`.
 */

/** Whether NVML is usable, and why not. */
export interface INvmlStatus {
  available: boolean;
  reason: string | null;
  reason_code: string | null;
  remedy: string | null;
  nvml_error: number | null;
  driver_version: string | null;
  cuda_driver_version: string | null;
  nvml_version: string | null;
}

/** `GET status`. */
export interface IStatus {
  nvml: INvmlStatus;
  gpu_count: number;
  visible_gpu_count: number;
  visible_devices: string;
  /** Seconds between two samples. */
  interval: number;
  /** Seconds of samples the server keeps. */
  history_seconds: number;
  simulated: boolean;
  /** The server's gpu-devbox version. */
  version: string;
}

/** One MIG instance of a GPU. */
export interface IMigInstance {
  uuid: string | null;
  name: string | null;
  profile: string | null;
  gpu_instance_id: number | null;
  compute_instance_id: number | null;
  memory: { total: number | null; used: number | null };
}

/** A process using a GPU. */
export interface IGpuProcess {
  pid: number;
  /** bytes */
  used_memory: number | null;
}

/** One GPU in `GET gpus`. */
export interface IGpu {
  index: number;
  uuid: string;
  name: string;
  serial: string | null;
  pci_bus_id: string | null;
  compute_capability: string | null;
  utilization: { gpu: number | null; memory: number | null };
  memory: {
    total: number | null;
    used: number | null;
    reserved: number | null;
    free: number | null;
  };
  temperature: { gpu: number | null };
  power: { usage: number | null; limit: number | null };
  clocks: {
    sm: number | null;
    memory: number | null;
    sm_max: number | null;
    memory_max: number | null;
  };
  pcie: { tx: number | null; rx: number | null };
  energy: { total: number | null };
  ecc: { uncorrected_volatile: number | null };
  mig: {
    capable: boolean;
    enabled: boolean;
    pending: boolean | null;
    instances: IMigInstance[];
  };
  processes: IGpuProcess[] | null;
}

/** `GET gpus`, and the `data` of a `gpus` stream message. */
export interface IGpus {
  /** Unix seconds. */
  timestamp: number;
  simulated: boolean;
  gpus: IGpu[];
}

/** One GPU in a history sample: only the charted fields. */
export interface IHistoryGpu {
  index: number;
  uuid: string;
  utilization: { gpu: number | null; memory: number | null };
  memory: { used: number | null; reserved: number | null };
  temperature: { gpu: number | null };
  power: { usage: number | null };
  clocks: { sm: number | null; memory: number | null };
  pcie: { tx: number | null; rx: number | null };
}

/** One history sample. */
export interface IHistorySample {
  timestamp: number;
  gpus: IHistoryGpu[];
}

/** `GET gpus/history`. */
export interface IHistory {
  interval: number;
  history_seconds: number;
  samples: IHistorySample[];
}

/** The `data` of the `hello` stream message. */
export interface IHello {
  interval: number;
  floor: number;
  status: IStatus;
}

/** A push-stream message. */
export interface IStreamMessage {
  type: string;
  data: unknown;
}

/** The outcome of one doctor check. */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** One check of `GET checks`. */
export interface ICheck {
  id: string;
  status: CheckStatus;
  title: string;
  detail: string;
  /** What to do; empty when nothing needs doing. */
  remedy: string;
  /** The Python environment the check is about ('server', 'kernel <name> (<display name>)'). */
  environment?: string;
  /** The data-table rows the outcome rests on. */
  source?: string;
}

/** `GET checks`. */
export interface IChecks {
  /** When the cached facts were gathered (ISO 8601, UTC). */
  gathered_at: string | null;
  /** The worst status. */
  status: CheckStatus;
  counts: Record<CheckStatus, number>;
  checks: ICheck[];
  tables_as_of: Record<string, string>;
  facts: Record<string, unknown>;
}
