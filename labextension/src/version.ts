/** This panel's version; a test keeps it equal to package.json's and the Python package's. */
export const VERSION = '0.1.0';
