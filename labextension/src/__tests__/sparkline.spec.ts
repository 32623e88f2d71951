import {
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
    expect(d).toBe(`M0 ${SPARK_HEIGHT}L60 14L119 0`);
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
    expect(d).toBe(`M10 ${SPARK_HEIGHT}L11 ${SPARK_HEIGHT}`);
  });

  it('clamps values outside the scale', () => {
    const d = sparklinePath(
      ringOf([
        [0, 150],
        [1, -20]
      ]),
      Channel.Utilization,
      scale
    );
    expect(d).toBe(`M0 0L1 ${SPARK_HEIGHT}`);
  });

  it('keeps a spike when many samples share one horizontal unit', () => {
    // 600 samples over 120 units: five per unit; one spike to 100 among zeros
    const samples: Array<[number, number]> = [];
    for (let i = 0; i < 600; i++) {
      samples.push([i * 0.2, i === 301 ? 100 : 0]);
    }
    const d = sparklinePath(ringOf(samples), Channel.Utilization, scale);
    expect(points(d).length).toBeLessThanOrEqual(2 * 121);
    expect(d).toContain('L60 0');
  });

  it('draws nothing for an empty window or a degenerate scale', () => {
    expect(sparklinePath(new Ring(4), Channel.Utilization, scale)).toBe('');
    expect(
      sparklinePath(ringOf([[1, 1]]), Channel.Utilization, { ...scale, max: 0 })
    ).toBe('');
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
  it('only rewrites a path when it changed', () => {
    const spark = new Sparkline(2, 'PCIe history');
    const path = spark.node.querySelectorAll('path')[1];
    const spy = jest.spyOn(path, 'setAttribute');
    spark.draw(1, 'M0 0L1 1');
    spark.draw(1, 'M0 0L1 1');
    expect(spy).toHaveBeenCalledTimes(1);
    expect(path.getAttribute('d')).toBe('M0 0L1 1');
    expect(spark.node.getAttribute('aria-label')).toBe('PCIe history');
  });
});
