/** The panel's icon: a graphics card (board, bracket, chip, fan), themed through jp-icon3. */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path fill-rule="evenodd" d="M1 5h2v1h17a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H9v2H7v-2H5v2H3V7H1zm4 3v8h15V8z"/>
    <rect x="7" y="10" width="5" height="4" rx="0.5"/>
    <path d="M16.5 9a3 3 0 1 1 0 6 3 3 0 0 1 0-6zm0 2a1 1 0 1 0 0 2 1 1 0 0 0 0-2z"/>
  </g>
</svg>`;

export const gpuIcon = new LabIcon({ name: 'gpu-devbox:gpu', svgstr: svg });
