import { ChecksModel } from '../checks';
import { ICheck } from '../tokens';
import { makeChecksDocument } from './fixtures';
import { HealthSection } from '../widgets/healthSection';

const checks: ICheck[] = [
  {
    id: 'nvml',
    status: 'pass',
    title: 'NVML works',
    detail: 'driver 580.159.04',
    remedy: ''
  },
  {
    id: 'framework-cuda',
    status: 'fail',
    title: 'torch 2.9.0+cu130 needs a newer driver',
    detail: 'The driver supports CUDA up to 12.4.',
    remedy: 'Install the cu124 wheel of torch.',
    environment: 'kernel python3 (Python 3 (ipykernel))',
    source: 'CUDA Toolkit release notes https://docs.nvidia.com/cuda/ [primary]'
  },
  {
    id: 'gpu-arch',
    status: 'pass',
    title: 'torch supports sm_90',
    detail: '',
    remedy: 'nothing to do',
    environment: 'server'
  }
];

describe('HealthSection', () => {
  it('groups checks by status with detail, remedy, environment and source', async () => {
    const model = new ChecksModel(async () =>
      makeChecksDocument(checks, {
        gathered_at: new Date(Date.now() - 125_000).toISOString()
      })
    );
    const section = new HealthSection(model);
    await model.load();
    const node = section.node;
    expect(node.querySelector('.jp-GpuDevbox-summary')!.textContent).toBe(
      '1 failed · 2 passed · facts gathered 2 min ago'
    );
    const groups = Array.from(node.querySelectorAll('details'));
    expect(groups.map(g => g.getAttribute('data-status'))).toEqual([
      'fail',
      'pass'
    ]);
    expect(groups.map(g => g.open)).toEqual([true, false]);
    const failed = node.querySelector('[data-check="framework-cuda"]')!;
    expect(failed.querySelector('.jp-GpuDevbox-chip')!.textContent).toBe(
      'kernel python3 (Python 3 (ipykernel))'
    );
    expect(
      failed.querySelector('.jp-GpuDevbox-check-detail')!.textContent
    ).toBe('The driver supports CUDA up to 12.4.');
    expect(failed.querySelector('.jp-GpuDevbox-remedy')!.textContent).toBe(
      'Fix: Install the cu124 wheel of torch.'
    );
    expect(failed.getAttribute('title')).toContain(
      'CUDA Toolkit release notes'
    );
    // a passed check shows no remedy, even if the server sent one
    expect(
      node.querySelector('[data-check="gpu-arch"] .jp-GpuDevbox-remedy')
    ).toBeNull();
    section.dispose();
  });

  it('says what went wrong when the checks cannot be loaded', async () => {
    const model = new ChecksModel(async () => {
      throw new Error('facts gathering timed out');
    });
    const section = new HealthSection(model);
    await model.load();
    const error = section.node.querySelector(
      '.jp-GpuDevbox-error'
    ) as HTMLElement;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe('facts gathering timed out');
    section.dispose();
  });
});
