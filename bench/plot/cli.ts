#!/usr/bin/env node
/**
 * `npm run bench:plot -- [results.json]`: (re)draws a saved bench run's two SVG figures next to
 * it (default bench/results/latest.json → latest-time.svg, latest-requests.svg). Runs nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { writeFigures } from './figures.js';
import type { BenchResult } from '../result.js';

/** The repository root, from dist/bench/plot/cli.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const program = new Command('bench:plot')
  .description("draw a bench results file's figures (time to configured, metadata requests) as SVG next to it")
  .argument('[results]', 'a bench results file', join(ROOT, 'bench/results/latest.json'))
  .allowExcessArguments(false)
  .action((file: string) => {
    let res: BenchResult;
    try {
      res = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
    } catch (e) {
      process.stderr.write(`bench:plot: ${file}: ${(e as Error).message.split('\n')[0]}\n`);
      process.exit(1);
    }
    if (!Array.isArray(res.summary) || !Array.isArray(res.contenders)) {
      process.stderr.write(`bench:plot: ${file}: not a bench results file (no summary/contenders)\n`);
      process.exit(1);
    }
    for (const f of writeFigures(res, file)) process.stdout.write(`${f}\n`);
  });

program.parse();
