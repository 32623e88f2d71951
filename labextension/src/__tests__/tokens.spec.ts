/**
 * src/tokens.ts is generated from the server's OpenAPI document (`jlpm build:tokens`): these run
 * the generator as a developer does and fail when the committed file is stale.
 */
export {};
declare const require: (id: string) => unknown;
declare const __dirname: string;

interface IChildProcess {
  spawnSync(
    command: string,
    args: string[],
    options: { encoding: 'utf8'; timeout: number }
  ): { status: number | null; stderr: string; stdout: string };
}
interface IFs {
  readFileSync(path: string, encoding: 'utf8'): string;
  writeFileSync(path: string, text: string): void;
  mkdtempSync(prefix: string): string;
}
interface IPath {
  join(...parts: string[]): string;
}

const childProcess = require('child_process') as IChildProcess;
const fs = require('fs') as IFs;
const path = require('path') as IPath;
const os = require('os') as { tmpdir(): string };

const SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'openapi-types.js');
const DOCUMENT = path.join(
  __dirname,
  '..',
  '..',
  '..',
  'gpu_devbox',
  'server',
  'openapi.json'
);

function generator(...args: string[]) {
  return childProcess.spawnSync('node', [SCRIPT, '--check', ...args], {
    encoding: 'utf8',
    timeout: 60_000
  });
}

describe('tokens.ts', () => {
  it('is what jlpm build:tokens generates from openapi.json', () => {
    const result = generator();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('is reported stale when the document changes', () => {
    const document = JSON.parse(fs.readFileSync(DOCUMENT, 'utf8'));
    document.components.schemas.Gpu.properties.fan = {
      type: 'object',
      properties: { speed: { type: ['number', 'null'] } },
      required: ['speed']
    };
    const changed = path.join(
      fs.mkdtempSync(`${os.tmpdir()}/tokens-`),
      'a.json'
    );
    fs.writeFileSync(changed, JSON.stringify(document));
    const result = generator('--document', changed);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('run jlpm build:tokens');
  });
});
