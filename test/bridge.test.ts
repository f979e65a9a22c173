/**
 * The Python side's guards, through the real bridge and the real interpreter:
 * an obj.pkl that is unsafe to unpickle is refused before anything is executed.
 */
import { expect } from 'chai';
import { mkdtemp, rm, writeFile, chmod, chown, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startBridge, pythonErrorLine, type Bridge } from '../bridge/index.js';

/** A pickle that, if loaded, would create `marker`. */
async function evilPickle(path: string, marker: string): Promise<void> {
  const code = `import pickle,os\nclass E:\n  def __reduce__(self):\n    return (os.system, (${JSON.stringify('touch ' + marker)},))\nopen(${JSON.stringify(path)},'wb').write(pickle.dumps(E()))\n`;
  await execa('/usr/bin/python3', ['-c', code]);
}

describe('bridge: obj.pkl guards', function () {
  let dir: string;
  let b: Bridge;
  before(async () => {
    b = await startBridge();
  });
  after(() => b.close());
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hp-bridge-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('missing obj.pkl → NoCache with a clear message', async () => {
    const e = await b.open(join(dir, 'obj.pkl')).catch((x) => x);
    expect(e.kind).to.equal('NoCache');
    expect(e.message).to.match(/no cached datasource at .*obj\.pkl/);
  });

  for (const [name, prep, re] of [
    ['group-writable', async (p: string) => chmod(p, 0o620), /writable by group or others/],
    ['world-writable', async (p: string) => chmod(p, 0o602), /writable by group or others/],
    ['not root-owned', async (p: string) => chown(p, 1000, 1000), /owned by uid 1000, not root/],
  ] as const) {
    it(`${name} obj.pkl is refused and never unpickled`, async () => {
      const p = join(dir, 'obj.pkl');
      const marker = join(dir, 'pwned');
      await evilPickle(p, marker);
      await chmod(p, 0o400);
      await prep(p);
      const e = await b.open(p).catch((x) => x);
      expect(e.kind).to.equal('UnsafeCache');
      expect(e.message).to.match(re);
      expect(existsSync(marker), 'the pickle ran').to.equal(false);
    });
  }

  it('a symlink planted at obj.pkl is refused', async () => {
    const real = join(dir, 'real.pkl');
    await writeFile(real, 'x', { mode: 0o400 });
    const p = join(dir, 'obj.pkl');
    await symlink(real, p);
    const e = await b.open(p).catch((x) => x);
    expect(e.kind).to.equal('UnsafeCache');
    expect(e.message).to.match(/symlink/);
  });

  it('a root-owned 0400 pickle that would run code is refused by the class allow-list', async () => {
    const p = join(dir, 'obj.pkl');
    const marker = join(dir, 'pwned');
    await evilPickle(p, marker);
    await chmod(p, 0o400);
    const e = await b.open(p).catch((x) => x);
    expect(e.kind).to.equal('UnsafeCache');
    expect(e.message).to.match(/os\.system|not allowed/);
    expect(existsSync(marker), 'the pickle ran').to.equal(false);
  });

  it('pythonErrorLine finds the Python exception in a pythonia stack', () => {
    // The shape pythonia 1.2.6 really produces (captured from json.loads('{bad')).
    const stack =
      "*** PY ***  Python Error  Call to 'loads' failed:\n> await m.loads('{bad')\n  at async file:///x.mjs:4:7\n\n... across the bridge ...\n\n> obj, end = self.scan_once(s, idx)\n  at raw_decode (/usr/lib/python3.11/json/decoder.py:353)\n*** JS *** json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)";
    expect(pythonErrorLine(stack)).to.equal('json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)');
    expect(pythonErrorLine('no python here')).to.equal(undefined);
  });
});
