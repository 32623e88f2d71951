/**
 * This panel's version: package.json's, the project's one source of its version (hatch reads the
 * same file for the Python package, so the server reports the same string in `GET status`).
 */

// The bundler (and jest) resolve the require at build time; tsc leaves it as it is, and from
// lib/ it names the same file. Declared here so the extension needs no Node.js typings.
declare const require: (id: string) => unknown;

const packageJson = require('../package.json') as { version: string };

export const VERSION: string = packageJson.version;
