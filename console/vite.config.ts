import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The bundle is committed and embedded in the srs binary: hashed names
// under dist/assets/, no source maps, nothing loaded from elsewhere.
export default defineConfig({
  plugins: [preact({ devToolsInProd: false, prefreshEnabled: false })],
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  server: { proxy: { '/graphql': { target: process.env.SRS_URL ?? 'http://127.0.0.1:8080', ws: true }, '^/recordings/[^/]+/content': process.env.SRS_URL ?? 'http://127.0.0.1:8080' } },
});
