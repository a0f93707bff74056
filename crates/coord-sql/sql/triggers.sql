-- coord's stored triggers. Built-in SQL only (no coord function), so they
-- run in every client, with or without coord loaded. Run by coord_init()
-- after schema.sql and after the `hmac` columns exist. The {..._columns}
-- and {..._changed} holes are filled from coord-core's row model (Claim and
-- Message), which alone says which columns a row signs.

-- A write that changes a claim's signed fields but leaves the old MAC in
-- place would leave a MAC that no longer matches: clear it, so the row reads
-- as unsigned instead of keeping a signature it does not have.
DROP TRIGGER IF EXISTS coord_work_stale_mac;
CREATE TRIGGER coord_work_stale_mac
AFTER UPDATE OF {claim_columns} ON work
WHEN NEW.hmac IS NOT NULL AND NEW.hmac IS OLD.hmac
 AND ({claim_changed})
BEGIN
    UPDATE work SET hmac = NULL WHERE rowid = NEW.rowid;
END;

-- The epoch fences old holders; it must never go down.
DROP TRIGGER IF EXISTS coord_work_epoch_up;
CREATE TRIGGER coord_work_epoch_up
BEFORE UPDATE OF epoch ON work
WHEN NEW.epoch < OLD.epoch
BEGIN
    SELECT RAISE(ABORT, 'coord: a task''s epoch never goes down');
END;

DROP TRIGGER IF EXISTS coord_messages_stale_mac;
CREATE TRIGGER coord_messages_stale_mac
AFTER UPDATE OF {message_columns} ON messages
WHEN NEW.hmac IS NOT NULL AND NEW.hmac IS OLD.hmac
 AND ({message_changed})
BEGIN
    UPDATE messages SET hmac = NULL WHERE id = NEW.id;
END;

-- The log is append-only: no client changes or removes an event. (Whoever
-- can write the file can drop these; readers then see the gap or the
-- broken link, and witnesses see a shorter log.)
DROP TRIGGER IF EXISTS coord_events_no_update;
CREATE TRIGGER coord_events_no_update
BEFORE UPDATE ON coord_events
BEGIN
    SELECT RAISE(ABORT, 'coord: the event log is append-only');
END;

DROP TRIGGER IF EXISTS coord_events_no_delete;
CREATE TRIGGER coord_events_no_delete
BEFORE DELETE ON coord_events
BEGIN
    SELECT RAISE(ABORT, 'coord: the event log is append-only');
END;
