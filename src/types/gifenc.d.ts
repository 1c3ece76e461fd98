// gifenc ships no types; this covers the part of its API qgate uses (see its README).
declare module 'gifenc' {
  export interface FrameOptions {
    palette?: number[][];
    /** Frame delay in milliseconds. */
    delay?: number;
    /** -1 = play once, 0 = loop forever. */
    repeat?: number;
    first?: boolean;
  }
  export interface Encoder {
    writeFrame(index: Uint8Array, width: number, height: number, options?: FrameOptions): void;
    finish(): void;
    bytes(): Uint8Array;
  }
  export function GIFEncoder(options?: { auto?: boolean }): Encoder;
  const gifenc: { GIFEncoder: typeof GIFEncoder };
  export default gifenc;
}
