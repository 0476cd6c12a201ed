// esbuild embeds .wasm imports as bytes (--loader:.wasm=binary).
declare module '*.wasm' {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}
