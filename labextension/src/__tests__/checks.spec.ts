import { ApiError } from '../api';
import {
  checksSummary,
  ChecksModel,
  groupChecks,
  parseChecks
} from '../checks';
import { ICheck, IChecksDocument } from '../tokens';
import { makeChecksDocument } from './fixtures';

const checks: ICheck[] = [
  {
    id: 'nvml',
    status: 'pass',
    title: 'NVML works',
    detail: 'driver 580',
    remedy: ''
  },
  {
    id: 'framework-cuda',
    status: 'fail',
    title: 'torch built for CUDA 13.1',
    detail: 'driver supports 12.4',
    remedy: 'pip install torch --index-url .../cu124',
    environment: 'kernel python3 (Python 3 (ipykernel))'
  },
  {
    id: 'base-image-lifecycle',
    status: 'warn',
    title: 'EOL image',
    detail: 'd',
    remedy: 'r'
  },
  {
    id: 'gpu-arch',
    status: 'skip',
    title: 'no torch',
    detail: '',
    remedy: ''
  }
];

describe('checks', () => {
  it('groups by status, most urgent first', () => {
    expect(groupChecks(checks).map(g => g.status)).toEqual([
      'fail',
      'warn',
      'pass',
      'skip'
    ]);
    expect(
      groupChecks(checks.filter(c => c.status === 'pass')).map(g => g.status)
    ).toEqual(['pass']);
  });

  it('summarises the counts', () => {
    expect(checksSummary(checks)).toBe(
      '1 failed · 1 warning · 1 passed · 1 skipped'
    );
    expect(checksSummary([])).toBe('No checks');
  });

  it('reads the envelope or a bare list and drops malformed items', () => {
    expect(parseChecks({ checks })).toHaveLength(4);
    expect(
      parseChecks([...checks, { id: 'x', status: 'maybe' }, null])
    ).toHaveLength(4);
    expect(() => parseChecks({ results: [] })).toThrow(
      'without a list of checks'
    );
  });

  it('loads, reports errors and knows an older server without the route', async () => {
    let answer: () => Promise<IChecksDocument> = async () =>
      makeChecksDocument(checks, { gathered_at: '2026-11-22T12:00:00+00:00' });
    const refreshes: boolean[] = [];
    const model = new ChecksModel(refresh => {
      refreshes.push(refresh);
      return answer();
    });
    await model.load(true);
    expect(model.checks).toHaveLength(4);
    expect(model.error).toBe('');
    expect(refreshes).toEqual([true]);
    expect(model.gatheredAt).toBe(Date.UTC(2026, 10, 22, 12));

    answer = async () => {
      throw new ApiError(404, 'Not Found');
    };
    await model.load();
    expect(model.unavailable).toBe(true);
    expect(model.checks).toHaveLength(4); // the last answer stays on screen

    answer = async () => {
      throw new ApiError(500, 'facts gathering timed out');
    };
    await model.load();
    expect(model.unavailable).toBe(false);
    expect(model.error).toBe('facts gathering timed out');
  });

  it('runs one load at a time', async () => {
    let calls = 0;
    const model = new ChecksModel(async () => {
      calls++;
      return makeChecksDocument(checks);
    });
    await Promise.all([model.load(), model.load(true)]);
    expect(calls).toBe(1);
  });
});
