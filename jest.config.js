// Unit tests for the frontend's pure logic: ts-jest on src/__tests__, in node (no DOM needed).
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  collectCoverageFrom: [
    'src/diff.ts',
    'src/foreign.ts',
    'src/params.ts',
    'src/roles.ts',
    'src/settings.ts',
    'src/stages.ts',
    'src/suggestion.ts'
  ],
  coverageReporters: ['text'],
  coverageDirectory: 'coverage'
};
