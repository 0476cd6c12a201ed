// A .wasm import is the file's bytes, read when the bundle loads (scripts/build-host.mjs).
declare module '*.wasm' {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}
