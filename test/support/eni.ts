/**
 * A strict parser for the ifupdown `interfaces(5)` files cloud-init's ENI renderer writes
 * (/etc/network/interfaces.d/50-cloud-init). Strict on purpose: the reliability tests use it to
 * prove a file is whole (a truncated or interleaved write does not parse) and to compare the
 * rendered config with what metadata says.
 */

export interface EniStanza {
  iface: string;
  family: string;
  method: string;
  /** Option lines of the stanza, in order ("metric 200", "address 10.0.2.12/24"). */
  options: string[];
  /** Preceded by a "# control-alias <if>" comment (cloud-init's secondary addresses). */
  alias: boolean;
}

export interface Eni {
  auto: string[];
  stanzas: EniStanza[];
}

const NAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const OPTION = /^(address|netmask|gateway|metric|mtu|hwaddress|dns-nameservers|dns-search|broadcast|pre-up|post-up|up|down|pre-down|post-down)\s+\S.*$/;

/** Parses `text`; throws with the line number on anything it does not recognize. */
export function parseEni(text: string): Eni {
  if (text.length && !text.endsWith('\n')) throw new Error('ENI: last line is not terminated (truncated write?)');
  const out: Eni = { auto: [], stanzas: [] };
  let cur: EniStanza | null = null;
  let alias = false;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const where = `ENI line ${i + 1}`;
    const line = raw.trim();
    if (line === '') {
      cur = null;
      return;
    }
    if (line.startsWith('#')) {
      if (/^# control-alias \S+$/.test(line)) alias = true;
      return;
    }
    const w = line.split(/\s+/);
    if (w[0] === 'auto') {
      if (w.length < 2 || !w.slice(1).every((n) => NAME.test(n))) throw new Error(`${where}: bad auto line ${JSON.stringify(raw)}`);
      out.auto.push(...w.slice(1));
      cur = null;
      return;
    }
    if (w[0] === 'iface') {
      if (w.length !== 4 || !NAME.test(w[1]!) || !/^(inet|inet6)$/.test(w[2]!) || !/^(dhcp|static|loopback|manual|auto)$/.test(w[3]!)) {
        throw new Error(`${where}: bad iface line ${JSON.stringify(raw)}`);
      }
      cur = { iface: w[1]!, family: w[2]!, method: w[3]!, options: [], alias };
      alias = false;
      out.stanzas.push(cur);
      return;
    }
    if (!cur) throw new Error(`${where}: option outside a stanza ${JSON.stringify(raw)}`);
    if (!OPTION.test(line)) throw new Error(`${where}: unknown option ${JSON.stringify(raw)}`);
    (cur as EniStanza).options.push(line.replace(/\s+/g, ' '));
  });
  return out;
}

/** The ENI content cloud-init renders for these NICs, reduced to a canonical, comparable form. */
export function canonicalEni(eni: Eni): string[] {
  const out = eni.auto.map((a) => `auto ${a}`);
  for (const s of eni.stanzas) out.push(`${s.alias ? 'alias ' : ''}iface ${s.iface} ${s.family} ${s.method}${s.options.length ? ' [' + s.options.join('; ') + ']' : ''}`);
  return out.sort();
}
