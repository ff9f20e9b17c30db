'use strict';
/**
 * Node's Jest environment plus quiet logs: what the app logs during a test (test/helpers/test-logs.ts collects it
 * in the test's global `__mcTestLogs`) is printed only when that test fails, so failure-path tests that log errors on
 * purpose do not fill the output, and a real failure still shows its logs.
 */
const { TestEnvironment } = require('jest-environment-node');

class QuietLogsEnvironment extends TestEnvironment {
  handleTestEvent(event) {
    if (event.name === 'test_start') {
      this.global.__mcTestLogs = [];
    } else if (event.name === 'test_done') {
      const logs = this.global.__mcTestLogs ?? [];
      if (event.test.errors.length > 0 && logs.length > 0) {
        process.stderr.write(
          `\n--- logs of the failed test "${event.test.name}" ---\n${logs.join('')}--- end of logs ---\n`,
        );
      }
      this.global.__mcTestLogs = [];
    }
  }
}

module.exports = QuietLogsEnvironment;
