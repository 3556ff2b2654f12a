/**
 * The authorization endpoint, where a person signs in and consents (Tessera's interaction pages).
 * Its routes are where an `offline_access` request asks for consent.
 */
import type { Slice } from './feature.ts';

export const authorization: Slice = {
  name: 'authorization endpoint',
  paths: [{ path: '/auth', fastPath: false }, { path: '/auth/:uid', fastPath: false }],
  interactionRoutes: ['authorization', 'resume'],
};
