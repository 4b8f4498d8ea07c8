// The waiting room's proof of work, off the page's thread: the nonce n = 0, 1, 2, … such that
// SHA-256(challenge ‖ n) starts with `bits` zero bits, the rule the server checks
// (domain/waiting_room/tokens.rs `meets`).
//
// SHA-256 is computed here, synchronously, in batches between messages: WebCrypto's digest is a
// promise per hash, and awaiting one per hash costs far more than the hash itself on a phone
// (measured in docs/api.md). The input is ASCII (a base64url challenge and decimal digits).
'use strict';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Uint32Array(64);

// The first 32 bits of SHA-256 of `msg[0..len]` (`msg` has room for the padding).
function firstWord(msg, len) {
  const blocks = ((len + 8) >> 6) + 1;
  msg.fill(0, len, blocks * 64);
  msg[len] = 0x80;
  const bitLen = len * 8;
  const end = blocks * 64;
  msg[end - 4] = bitLen >>> 24; msg[end - 3] = bitLen >>> 16;
  msg[end - 2] = bitLen >>> 8; msg[end - 1] = bitLen;
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let b = 0; b < end; b += 64) {
    for (let i = 0; i < 16; i++) {
      const j = b + i * 4;
      W[i] = (msg[j] << 24) | (msg[j + 1] << 16) | (msg[j + 2] << 8) | msg[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const x = W[i - 15], y = W[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = h0, bb = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  return h0 >>> 0;
}

// Writes the decimal digits of `n` at `msg[at..]`, returns the new length.
function digits(msg, at, n) {
  const s = String(n);
  for (let i = 0; i < s.length; i++) msg[at + i] = s.charCodeAt(i);
  return at + s.length;
}

// { challenge, bits } in; { progress: hashes } now and then, then { nonce, hashes, ms }.
// `{ bench: ms }` in: hashes for that long, then { hashes, ms } (the rate a device can do).
onmessage = (e) => {
  const { challenge = 'benchmark', bits = 32, bench } = e.data;
  const prefix = new TextEncoder().encode(challenge);
  const msg = new Uint8Array(prefix.length + 32 + 128);
  msg.set(prefix);
  const start = Date.now();
  const need = bits;
  for (let n = 0; ; n++) {
    const len = digits(msg, prefix.length, n);
    const word = firstWord(msg, len);
    if (!bench && (need === 0 || Math.clz32(word) >= need)) {
      postMessage({ nonce: String(n), hashes: n + 1, ms: Date.now() - start });
      return;
    }
    if ((n & 0xffff) === 0xffff) {
      const ms = Date.now() - start;
      if (bench && ms >= bench) {
        postMessage({ hashes: n + 1, ms });
        return;
      }
      if (!bench) postMessage({ progress: n + 1 });
    }
  }
};
