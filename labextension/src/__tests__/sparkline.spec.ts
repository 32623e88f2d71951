import {
  firstAtOrAfter,
  SPARK_HEIGHT,
  Sparkline,
  sparklinePath,
  windowMax
} from '../sparkline';
import { Channel, Ring } from '../store';

function ringOf(points: Array<[number, number]>): Ring {
  const ring = new Ring(1000);
  for (const [t, v] of points) {
    ring.push(t, [v, 0, 0, 0, 0, 0]);
  }
  return ring;
}

const scale = { tStart: 0, tEnd: 120, min: 0, max: 100, gap: 5 };

function points(d: string): string[] {
  return d.match(/[ML][^ML]+/g) ?? [];
}

describe('sparklinePath', () => {
  it('maps time to x and value to y (0 at the bottom)', () => {
    const d = sparklinePath(
      ringOf([
        [0, 0],
        [60, 50],
        [119, 100]
      ]),
      Channel.Utilization,
      {
        ...scale,
        gap: 100
      }
    );
    expect(d).toBe(`M0 ${SPARK_HEIGHT}L500 140L990 0`);
  });

  it('breaks the line over a gap longer than the gap setting', () => {
    const d = sparklinePath(
      ringOf([
        [0, 10],
        [1, 10],
        [30, 10],
        [31, 10]
      ]),
      Channel.Utilization,
      scale
    );
    expect(points(d).filter(p => p.startsWith('M'))).toHaveLength(2);
  });

  it('breaks the line where the GPU reported nothing', () => {
    const d = sparklinePath(
      ringOf([
        [0, 10],
        [1, NaN],
        [2, 10],
        [3, 10]
      ]),
      Channel.Utilization,
      scale
    );
    expect(
      points(d)
        .map(p => p[0])
        .join('')
    ).toBe('MML');
  });

  it('leaves out samples before the window', () => {
    const d = sparklinePath(
      ringOf([
        [-50, 100],
        [10, 0],
        [11, 0]
      ]),
      Channel.Utilization,
      scale
    );
    expect(d).toBe(`M80 ${SPARK_HEIGHT}L90 ${SPARK_HEIGHT}`);
  });

  it('clamps values outside the scale', () => {
    const d = sparklinePath(
      ringOf([
        [0, 150],
        [5, -20]
      ]),
      Channel.Utilization,
      scale
    );
    expect(d).toBe(`M0 0L40 ${SPARK_HEIGHT}`);
  });

  it('keeps a spike when many samples share one horizontal unit', () => {
    // 600 samples over 100 buckets: six per bucket; one spike to 100 among zeros
    const samples: Array<[number, number]> = [];
    for (let i = 0; i < 600; i++) {
      samples.push([i * 0.2, i === 301 ? 100 : 0]);
    }
    const d = sparklinePath(ringOf(samples), Channel.Utilization, scale);
    expect(points(d).length).toBeLessThanOrEqual(2 * 101);
    expect(d).toContain(`L500 ${SPARK_HEIGHT}L500 0L510 ${SPARK_HEIGHT}`);
  });

  it('draws one point per bucket when its values are alike', () => {
    const samples: Array<[number, number]> = [];
    for (let i = 0; i < 600; i++) {
      samples.push([i * 0.2, 50 + (i % 2) * 0.5]); // jitter below 1% of the height
    }
    const d = sparklinePath(ringOf(samples), Channel.Utilization, scale);
    expect(points(d)).toHaveLength(100);
  });

  it('draws nothing for an empty window or a degenerate scale', () => {
    expect(sparklinePath(new Ring(4), Channel.Utilization, scale)).toBe('');
    expect(
      sparklinePath(ringOf([[1, 1]]), Channel.Utilization, { ...scale, max: 0 })
    ).toBe('');
  });
});

describe('firstAtOrAfter', () => {
  it('finds the window start in a wrapped ring', () => {
    const ring = new Ring(4);
    for (let t = 1; t <= 6; t++) {
      ring.push(t, [0, 0, 0, 0, 0, 0]); // holds 3, 4, 5, 6
    }
    expect(firstAtOrAfter(ring, 0)).toBe(0);
    expect(firstAtOrAfter(ring, 4.5)).toBe(2);
    expect(firstAtOrAfter(ring, 7)).toBe(4);
  });
});

describe('windowMax', () => {
  it('finds the largest reported value inside the window', () => {
    const ring = ringOf([
      [0, 500],
      [50, 3],
      [60, NaN],
      [70, 9]
    ]);
    expect(windowMax(ring, Channel.Utilization, 10)).toBe(9);
    expect(Number.isNaN(windowMax(ring, Channel.Utilization, 100))).toBe(true);
  });
});

describe('Sparkline', () => {
  const calls: string[] = [];
  const context = {
    setTransform: () => undefined,
    clearRect: () => calls.push('clear'),
    beginPath: () => calls.push('begin'),
    moveTo: (x: number, y: number) => calls.push(`M${x} ${y}`),
    lineTo: (x: number, y: number) => calls.push(`L${x} ${y}`),
    stroke: () => calls.push('stroke'),
    save: () => undefined,
    restore: () => undefined,
    strokeStyle: '',
    lineWidth: 0,
    lineJoin: ''
  };
  let resize: ((entries: unknown[]) => void) | null = null;

  beforeEach(() => {
    calls.length = 0;
    jest
      .spyOn(HTMLCanvasElement.prototype, 'getContext')
      .mockImplementation(() => context as any);
    (globalThis as any).ResizeObserver = class {
      constructor(callback: (entries: unknown[]) => void) {
        resize = callback;
      }
      observe(): void {
        // laid out later, see below
      }
      disconnect(): void {
        resize = null;
      }
    };
  });

  afterEach(() => {
    jest.restoreAllMocks();
    delete (globalThis as any).ResizeObserver;
  });

  it('draws nothing until it is laid out, then traces every line', () => {
    const spark = new Sparkline('PCIe history');
    expect(spark.node.tagName).toBe('CANVAS');
    expect(spark.node.getAttribute('aria-label')).toBe('PCIe history');
    const ring = ringOf([
      [0, 10],
      [1, 90]
    ]);
    const wide = { ...scale, gap: 100 };
    spark.draw([
      { ring, channel: Channel.Utilization, scale: wide },
      { ring, channel: Channel.Utilization, scale: { ...wide, max: 200 } }
    ]);
    expect(calls).toEqual([]); // hidden or not laid out: no size, no drawing
    resize!([{ contentRect: { width: 100, height: 28 } }]);
    expect(spark.node.width).toBe(100);
    expect(calls).toEqual([
      'clear',
      'begin',
      'M0 252',
      'L0 28',
      'stroke',
      'begin',
      'M0 266',
      'L0 154',
      'stroke'
    ]);
    expect(spark.points).toBe(4);
    spark.dispose();
    expect(resize).toBeNull();
  });
});
