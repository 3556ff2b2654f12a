/** Where the registration API lives: here, so the app can route to it without loading it (http/lazy-mount.ts). */
export const REGISTRATION_API_PREFIX = '/api';
