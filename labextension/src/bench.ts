/** Benchmark runs (placeholder until the benchmark API contract is final). */
import { DevboxApi } from './api';

export class BenchModel {
  constructor(readonly api: DevboxApi) {}

  handleEvent(data: unknown): void {
    void data;
  }
}
