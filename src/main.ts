/**
 * `npm start`. The scoring and generation service is its own issue; until it lands this entry point
 * says so instead of pretending to serve.
 */
console.error('qgate: service not built yet. The quality core is usable through `npm run score -- <image>`.');
process.exitCode = 1;
