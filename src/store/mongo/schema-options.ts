/** Options every schema of the MongoDB store shares (one file per repository): no implicit DDL, no version key, empty objects kept as they were given. */
export const schemaOptions = {
  versionKey: false,
  autoCreate: false,
  autoIndex: false,
  bufferCommands: false,
  minimize: false,
  // A field the schema does not know is a bug in this module, not data to drop silently.
  strict: 'throw',
} as const;
