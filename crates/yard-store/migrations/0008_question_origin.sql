-- What the asker needs to turn a question's outcome into its reply (for a
-- hook: the event and the tool call), kept with the question so the reply
-- can be made after a restart. Opaque to the store.

ALTER TABLE questions ADD COLUMN origin TEXT;
