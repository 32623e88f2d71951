// Puts install.json next to the built labextension so that `jupyter labextension list` says the
// extension is managed by pip. Copying it here (instead of mapping it separately in the wheel)
// keeps a developer's symlinked labextension and the wheel's shared data from both adding it.
const fs = require('fs');
const path = require('path');

const pkg = require('../package.json');
const outDir = path.resolve(__dirname, '..', pkg.jupyterlab.outputDir);
fs.copyFileSync(
  path.resolve(__dirname, '..', 'install.json'),
  path.join(outDir, 'install.json')
);
