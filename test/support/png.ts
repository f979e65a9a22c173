/**
 * Reads a PNG into RGBA pixels (8-bit, non-interlaced, colour types RGB and RGBA: what
 * rsvg-convert writes), so a test can look at what a renderer actually drew.
 */
import { inflateSync } from 'node:zlib';

export interface Image {
  width: number;
  height: number;
  /** width × height × 4 bytes, RGBA. */
  rgba: Uint8Array;
}

const SIGNATURE = '89504e470d0a1a0a';

export function decodePng(buf: Buffer): Image {
  if (buf.subarray(0, 8).toString('hex') !== SIGNATURE) throw new Error('not a PNG (bad signature)');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || interlace !== 0 || (colour !== 2 && colour !== 6)) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${interlace}`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (!width || !height || !idat.length) throw new Error('PNG without IHDR or IDAT');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) throw new Error(`PNG data is ${raw.length} bytes, expected ${height * (stride + 1)}`);
  const px = new Uint8Array(height * stride);
  // Undo the per-row filters (PNG spec §9): none, sub, up, average, Paeth.
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[row + i - channels]! : 0;
      const b = y > 0 ? px[row - stride + i]! : 0;
      const c = y > 0 && i >= channels ? px[row - stride + i - channels]! : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      if (f > 4) throw new Error(`bad PNG filter ${f} in row ${y}`);
      px[row + i] = (raw[src + i]! + pred) & 0xff;
    }
  }
  if (channels === 4) return { width, height, rgba: px };
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < px.length; i += 3, j += 4) rgba.set([px[i]!, px[i + 1]!, px[i + 2]!, 255], j);
  return { width, height, rgba };
}

/** How many pixels have exactly this opaque colour ('#rrggbb'). */
export function countColour(img: Image, hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let k = 0;
  for (let i = 0; i < img.rgba.length; i += 4) if (img.rgba[i] === r && img.rgba[i + 1] === g && img.rgba[i + 2] === b && img.rgba[i + 3] === 255) k++;
  return k;
}

/** Pixels that are not (near) white or transparent: what was drawn. */
export function inkedPixels(img: Image): number {
  let k = 0;
  for (let i = 0; i < img.rgba.length; i += 4) {
    const lum = (img.rgba[i]! + img.rgba[i + 1]! + img.rgba[i + 2]!) / 3;
    if (img.rgba[i + 3]! > 128 && lum < 230) k++;
  }
  return k;
}
