/**
 * Payload builders for the tests, shaped like the server's OpenAPI schemas (an idle H100 by
 * default; override what a test is about).
 */
import {
  ICheck,
  IChecksDocument,
  IGpu,
  IGpus,
  IHistory,
  IStatus
} from '../tokens';

export const GIB = 1024 ** 3;
/** An H100 80GB's memory as NVML reports it (81559 MiB). */
export const H100_TOTAL = 81559 * 1024 * 1024;

export function makeGpu(index: number, overrides: Partial<IGpu> = {}): IGpu {
  return {
    index,
    uuid: `GPU-${index}0000000-0000-0000-0000-000000000000`,
    name: 'NVIDIA H100 80GB HBM3',
    serial: null,
    pci_bus_id: `00000000:0${index}:00.0`,
    compute_capability: '9.0',
    minor_number: index,
    utilization: { gpu: 0, memory: 0 },
    memory: {
      total: H100_TOTAL,
      used: 0,
      reserved: 480 * 1024 * 1024,
      free: H100_TOTAL
    },
    temperature: { gpu: 31 },
    power: { usage: 71.5, limit: 700 },
    clocks: { sm: 345, memory: 2619, sm_max: 1980, memory_max: 2619 },
    pcie: { tx: 1024, rx: 2048 },
    energy: { total: 1000 },
    ecc: { uncorrected_volatile: 0 },
    mig: { capable: true, enabled: false, pending: null, instances: [] },
    processes: [],
    reason: null,
    ...overrides
  };
}

export function makeGpus(
  timestamp: number,
  gpus: IGpu[],
  simulated = false
): IGpus {
  return { timestamp, simulated, gpus };
}

export function makeStatus(overrides: Partial<IStatus> = {}): IStatus {
  return {
    nvml: {
      available: true,
      reason: null,
      reason_code: null,
      remedy: null,
      nvml_error: null,
      driver_version: '580.159.04',
      cuda_driver_version: '13.0',
      nvml_version: '13.580.159.04'
    },
    gpu_count: 2,
    visible_gpu_count: 2,
    visible_devices: '',
    interval: 1,
    history_seconds: 600,
    simulated: false,
    version: '0.1.0',
    gpu_busy_at: 1000,
    gpu_idle_seconds: 0,
    gpu_memory_held: false,
    cull: null,
    ...overrides
  };
}

/** The status of a machine without the NVIDIA driver library. */
export function noGpuStatus(): IStatus {
  return makeStatus({
    nvml: {
      available: false,
      reason:
        'NVML library not found: libnvidia-ml.so.1 is not on this machine or in this container.',
      reason_code: 'library_not_found',
      remedy: 'Start the container with GPU access.',
      nvml_error: 12,
      driver_version: null,
      cuda_driver_version: null,
      nvml_version: null
    },
    gpu_count: 0,
    visible_gpu_count: 0,
    gpu_busy_at: null,
    gpu_idle_seconds: null,
    gpu_memory_held: null
  });
}

/** A history of `count` samples, one per second ending at `end`, utilization = i. */
export function makeHistory(
  end: number,
  count: number,
  uuid = makeGpu(0).uuid
): IHistory {
  const samples = [];
  for (let i = 0; i < count; i++) {
    samples.push({
      timestamp: end - (count - 1 - i),
      gpus: [
        {
          index: 0,
          uuid,
          utilization: { gpu: i, memory: 0 },
          memory: { used: i * GIB, reserved: 0 },
          temperature: { gpu: 40 },
          power: { usage: 100 },
          clocks: { sm: 1000, memory: 2619 },
          pcie: { tx: null, rx: null }
        }
      ]
    });
  }
  return { interval: 1, history_seconds: 600, samples };
}

/** `GET checks` with these checks (counts and worst status computed, no facts). */
export function makeChecksDocument(
  checks: ICheck[],
  overrides: Partial<IChecksDocument> = {}
): IChecksDocument {
  const counts = { fail: 0, warn: 0, pass: 0, skip: 0 };
  checks.forEach(check => counts[check.status]++);
  const worst = (['fail', 'warn', 'pass', 'skip'] as const).find(
    status => counts[status] > 0
  );
  return {
    gathered_at: null,
    status: worst ?? 'skip',
    counts,
    checks,
    tables_as_of: {},
    facts: { schema_version: 1, nvml: {}, container: {}, environments: [] },
    ...overrides
  };
}
