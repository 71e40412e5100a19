// force timezone to UTC to allow tests to work regardless of local timezone
// generally used by snapshots, but can affect specific tests
process.env.TZ = 'UTC';

const base = require('./.config/jest.config');

module.exports = {
  // Jest configuration provided by Grafana scaffolding
  ...base,
  transform: {
    ...base.transform,
    // d3 and some @grafana dependencies ship ESM-only .mjs files
    '^.+\\.mjs$': base.transform['^.+\\.(t|j)sx?$'],
  },
};
