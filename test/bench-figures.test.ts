/**
 * The bench's pictures (bench/plot/): each SVG is rendered by a real renderer (rsvg-convert, from
 * Debian's librsvg2-bin) and the PNG it draws is read back: right size, not blank, every
 * contender's colour on it. The figures committed beside bench/results/latest.json must be what
 * `npm run bench:plot` draws from it, so they cannot drift from the run they show.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestsSvg, timeSvg, writeFigures } from '../bench/plot/figures.js';
import type { BenchResult, SummaryRow } from '../bench/result.js';
import { countColour, decodePng, inkedPixels, type Image } from './support/png.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LATEST = join(ROOT, 'bench/results/latest.json');
const PLOT = join(ROOT, 'dist/bench/plot/cli.js');
const COLOURS = { upstream: '#D55E00', oneshot: '#0072B2', daemon: '#009E73' };

function render(svg: string, dir: string, name: string): Image {
  const src = join(dir, `${name}.svg`);
  const png = join(dir, `${name}.png`);
  writeFileSync(src, svg);
  try {
    execFileSync('rsvg-convert', ['-o', png, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('rsvg-convert missing: apt-get install librsvg2-bin (scripts/setup.sh installs it)');
    throw new Error(`rsvg-convert refused ${name}.svg: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }
  return decodePng(readFileSync(png));
}

/** Drawn, not blank and not a solid block: between 1 % and 40 % of the pixels carry ink. */
function expectReadable(img: Image, what: string): void {
  expect([img.width, img.height], `${what}: PNG size`).to.deep.equal([760, 460]);
  const share = inkedPixels(img) / (img.width * img.height);
  expect(share, `${what}: share of drawn pixels`).to.be.within(0.01, 0.4);
}

describe('bench figures: SVG rendered by rsvg-convert', function () {
  this.timeout(60_000);
  let dir: string;
  let latest: BenchResult;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bench-figures-'));
    latest = JSON.parse(readFileSync(LATEST, 'utf8')) as BenchResult;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, draw] of [['time', timeSvg], ['requests', requestsSvg]] as const) {
    it(`${name}: latest.json renders to a readable PNG with a line for every contender`, function () {
      const svg = draw(latest);
      const img = render(svg, dir, name);
      expectReadable(img, name);
      for (const c of latest.contenders) {
        const hex = COLOURS[c.id as keyof typeof COLOURS];
        expect(countColour(img, hex), `${c.id}'s colour ${hex} drawn`).to.be.greaterThan(200);
      }
      // The run it shows, by commit, and its tree state said in red when dirty.
      expect(svg).to.contain(String(latest.machine.gitCommit).slice(0, 10));
      if (latest.machine.gitDirty) expect(countColour(img, '#b00020'), 'dirty-tree warning drawn').to.be.greaterThan(50);
      // Every NIC count of the storms is a tick, and the 16 × 8 IPs point is there.
      for (const t of ['>1<', '>4<', '>8<', '>16<']) expect(svg).to.contain(t);
      expect(svg.match(/<path d="M[^"]+Z" fill="white"/g)?.length, 'diamonds: one per contender + the legend').to.equal(latest.contenders.length + 1);
    });
  }

  it('the figures committed beside latest.json are what bench:plot draws from it', function () {
    for (const [f, draw] of [['latest-time.svg', timeSvg], ['latest-requests.svg', requestsSvg]] as const) {
      const committed = readFileSync(join(ROOT, 'bench/results', f), 'utf8');
      expect(committed === draw(latest), `bench/results/${f} is stale: run npm run bench:plot`).to.equal(true);
    }
  });

  it('a contender without results is named "not measured"; a failed point is left out and said so', function () {
    const res = structuredClone(latest);
    res.summary = res.summary
      .filter((r) => r.contender !== 'daemon')
      .map((r): SummaryRow => (r.mode === 'generic' && r.scenario === 'nics16' && r.contender === 'upstream' ? { ...r, status: 'failed' } : r));
    res.machine = { ...res.machine, gitDirty: false };
    const svg = timeSvg(res);
    expect(svg).to.contain('daemon (not measured)');
    expect(svg).to.contain('not plotted (no time to configured): nics16 upstream (failed)');
    expect(svg).to.not.contain('dirty tree');
    // upstream's line now ends at 8 NICs: 3 points, not 4
    const upLine = svg.split('\n').find((l) => l.startsWith('<polyline') && l.includes(COLOURS.upstream))!;
    expect(upLine.match(/\d+(\.\d+)?,\d+(\.\d+)?/g)).to.have.length(3);
    const img = render(svg, dir, 'partial');
    expectReadable(img, 'partial');
    expect(countColour(img, COLOURS.daemon), 'no daemon line drawn').to.be.lessThan(100);
  });

  it('npm run bench:plot draws both files next to a given results file; a file that is not one fails', async function () {
    const copy = join(dir, 'run.json');
    copyFileSync(LATEST, copy);
    const r = await execa('node', [PLOT, copy], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout.split('\n')).to.deep.equal([join(dir, 'run-time.svg'), join(dir, 'run-requests.svg')]);
    expect(readFileSync(join(dir, 'run-time.svg'), 'utf8')).to.equal(timeSvg(latest));
    writeFileSync(join(dir, 'bad.json'), '{"schema": 1}');
    const bad = await execa('node', [PLOT, join(dir, 'bad.json')], { reject: false });
    expect(bad.exitCode).to.equal(1);
    expect(bad.stderr).to.match(/not a bench results file/);
    expect(writeFigures(latest, join(dir, 'x.json'))).to.deep.equal([join(dir, 'x-time.svg'), join(dir, 'x-requests.svg')]);
  });
});
