// Helpers shared by the specs.

/** Writes the bytes of `hex` into fresh memory; returns the address. */
export function hexBytes(hex: string): usize {
  const n = hex.length >> 1;
  const p = heap.alloc(<usize>max<i32>(n, 1));
  for (let i = 0; i < n; i++) store<u8>(p + <usize>i, <u8>I32.parseInt(hex.substr(i * 2, 2), 16));
  return p;
}

export function hexLength(hex: string): i32 {
  return hex.length >> 1;
}
