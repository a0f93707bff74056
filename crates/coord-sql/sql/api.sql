-- coord's write API: one TEMP view per operation, whose INSTEAD OF INSERT
-- trigger does the whole operation as one statement. Each operation first
-- records its decision in temp.coord_result from the state it reads, then
-- makes the conditional write and checks that it applied: those two steps
-- are sql/writes.sql's, which coord-sql puts where `-- coord:writes OP` and
-- `-- coord:check OP` stand below (a server backend runs the same text). Run it
-- inside BEGIN IMMEDIATE (the CLI and the Rust API do): then no other writer
-- can act between the read and the write. Without it the statement is still
-- atomic, and a concurrent commit makes it fail with SQLITE_BUSY rather than
-- succeed on stale data.
--
-- Signing happens here, as the claimer or sender: coord_signer_claim(claimer,
-- task_id, epoch, expires_at) and coord_signer_message(sender, recipient,
-- channel, body) sign the row as coord-core's row model defines it, giving
-- a MAC when this connection holds that agent's key and NULL (never a stale
-- MAC) when it does not. Those two names are placeholders: coord-sql
-- replaces them with this connection's internal signers, whose names are
-- random (see functions.rs), so no object stored in a database can call
-- them.

-- Every operation that changes a row then appends its event, signed as
-- the acting agent (docs/history.md): this block stands wherever
-- `-- coord:event` does below. The signer is a placeholder as above; an
-- operation with no agent (a submit on a connection with none) records ''
-- and its event is unsigned.
-- coord:event-begin
-- (one UPDATE decides the whole event: its fields in the inner SELECT,
-- computed once, then its MAC over them; LIMIT on both levels keeps SQLite
-- from flattening the inner SELECT into the outer one, which would compute
-- the row's state and the head's link again for the MAC. The head is the
-- row at max(seq), read by its key. The outcomes are a CASE, not an IN
-- list: SQLite builds a table for an IN list of three or more constants
-- every time a trigger runs)
UPDATE coord_result
   SET (ev_seq, ev_prev, ev_op, ev_subject, ev_at, ev_agent, ev_state, ev_mac) =
       (SELECT seq, prev, op, subject, at, agent, state,
               CASE WHEN agent <> '' THEN coord_signer_event(agent, seq, prev, op, subject, at, state) END
          FROM (SELECT COALESCE(h.seq, 0) + 1 AS seq,
                       CASE WHEN h.seq IS NULL THEN ''
                            ELSE coord_event_link(h.agent, h.hmac, h.seq, h.prev, h.op, h.subject, h.at, h.state)
                       END AS prev,
                       CASE coord_result.outcome WHEN 'granted' THEN 'claim' WHEN 'renewed' THEN 'renew'
                            WHEN 'completed' THEN 'complete' WHEN 'abandoned' THEN 'abandon'
                            WHEN 'sent' THEN 'send' ELSE 'submit' END AS op,
                       CASE coord_result.op WHEN 'send' THEN CAST(coord_result.message_id AS TEXT)
                            ELSE coord_result.task_id END AS subject,
                       coord_result.now AS at,
                       COALESCE(coord_result.agent, coord_agent(), '') AS agent,
                       CASE coord_result.op
                            WHEN 'send' THEN (SELECT coord_state({message_state}) FROM main.messages AS m
                                               WHERE m.id = coord_result.message_id)
                            ELSE (SELECT coord_state({task_state}) FROM main.work AS w
                                   WHERE w.task_id = coord_result.task_id) END AS state
                  FROM (SELECT 1) LEFT JOIN main.coord_events AS h
                       ON h.seq = (SELECT max(seq) FROM main.coord_events)
                 LIMIT 1)
         LIMIT 1)
 WHERE CASE outcome WHEN 'granted' THEN 1 WHEN 'renewed' THEN 1 WHEN 'completed' THEN 1
                    WHEN 'abandoned' THEN 1 WHEN 'submitted' THEN 1 WHEN 'resubmitted' THEN 1
                    WHEN 'sent' THEN 1 END;
-- coord:writes event
-- coord:check event
-- coord:event-end

DROP TABLE IF EXISTS temp.coord_result;
CREATE TEMP TABLE coord_result (
    op TEXT NOT NULL,          -- claim, complete, abandon, submit, send
    task_id TEXT,
    agent TEXT,                -- the claimer or sender acting
    outcome TEXT NOT NULL,     -- see README: granted, renewed, denied, ...
    holder TEXT,               -- the task's claimer before the operation
    existed INTEGER,           -- claim: 1 if the task was there before
    epoch INTEGER,             -- the epoch after a grant, else the task's
    expires_at TEXT,           -- new expiry on grant/renew, holder's on deny
    now TEXT,
    signed INTEGER,            -- 1 if the written row carries a MAC
    message_id INTEGER,
    detail TEXT,               -- one line for people
    -- what the write needs beyond the above (see sql/writes.sql)
    mac TEXT,                  -- the MAC the row is written with
    result TEXT,               -- complete: the result
    metadata TEXT,             -- submit: the metadata
    recipient TEXT,            -- send: the message's fields
    channel TEXT,
    body TEXT,
    -- the operation's event (sql/writes.sql, `write: event`)
    ev_seq INTEGER,
    ev_prev TEXT,
    ev_op TEXT,
    ev_subject TEXT,
    ev_at TEXT,
    ev_agent TEXT,
    ev_state TEXT,
    ev_mac TEXT
);

-- claim -------------------------------------------------------------------
DROP VIEW IF EXISTS temp.coord_claim;
CREATE TEMP VIEW coord_claim(task_id, claimer, ttl_minutes) AS
SELECT NULL, NULL, NULL WHERE 0;

CREATE TEMP TRIGGER coord_claim_do INSTEAD OF INSERT ON coord_claim
BEGIN
    DELETE FROM coord_result;
    -- arguments, then the gate: the first problem found is the error
    SELECT coord_fail(problem) FROM (SELECT CASE
        WHEN typeof(NEW.task_id) IS NOT 'text' OR NEW.task_id = ''
            THEN 'coord_claim: task_id must be non-empty TEXT'
        WHEN COALESCE(NEW.claimer, coord_agent()) IS NULL
            THEN 'coord_claim: no claimer given and no agent set (coord_set_agent or $COORDINATION_AGENT)'
        WHEN NEW.ttl_minutes IS NOT NULL
             AND (typeof(NEW.ttl_minutes) NOT IN ('integer', 'real') OR NEW.ttl_minutes <= 0
                  OR NEW.ttl_minutes > 52560000)
            THEN 'coord_claim: ttl_minutes must be a positive number of minutes (at most 100 years)'
        ELSE (SELECT 'coord_claim: ' || NEW.task_id || ' matches gate pattern ' || quote(g.pattern)
                     || ' and this connection has no key that can sign as '
                     || COALESCE(NEW.claimer, coord_agent())
                FROM main.coord_gate AS g
               WHERE NEW.task_id GLOB g.pattern
                 AND NOT coord_can_sign(COALESCE(NEW.claimer, coord_agent()))
               LIMIT 1)
        END AS problem) WHERE problem IS NOT NULL;

    -- the decision, from the state read now, signed as the claimer (a MAC
    -- when this connection holds its key, else NULL), with its line for
    -- people: one INSERT (LIMIT on both levels keeps SQLite from flattening
    -- the signing SELECT into the outer one, which would sign twice)
    INSERT INTO coord_result(op, task_id, agent, outcome, holder, existed, epoch, expires_at, now,
                             mac, signed, detail)
    SELECT 'claim', task_id, agent, outcome, holder, existed, epoch, expires_at, now, mac,
           CASE WHEN outcome IN ('granted', 'renewed') THEN mac IS NOT NULL END,
           CASE outcome
               WHEN 'denied' THEN 'DENIED: ' || task_id || ' is held by ' || COALESCE(holder, 'nobody')
                                  || ' until ' || expires_at || ' (epoch ' || epoch || ')'
               WHEN 'renewed' THEN 'renewed ' || task_id || ' for ' || agent || ' until ' || expires_at
                                   || ' (epoch ' || epoch || ')'
               ELSE 'granted ' || task_id || ' to ' || agent || ' at epoch ' || epoch
                    || ' until ' || expires_at END
      FROM (SELECT d.*,
                   CASE WHEN outcome IN ('granted', 'renewed')
                        THEN coord_signer_claim(agent, task_id, epoch, expires_at) END AS mac
              FROM (SELECT task_id, agent, outcome, holder, existed,
                           CASE outcome WHEN 'granted' THEN old_epoch + 1 ELSE old_epoch END AS epoch,
                           CASE outcome WHEN 'denied' THEN old_expiry ELSE exp END AS expires_at,
                           now
                      FROM (SELECT t.*, w.claimer AS holder, w.task_id IS NOT NULL AS existed,
                                   COALESCE(w.epoch, 0) AS old_epoch,
                                   w.expires_at AS old_expiry,
                                   CASE WHEN w.task_id IS NULL THEN 'granted'
                                        WHEN w.status = 'claimed' AND w.expires_at >= t.now
                                             AND w.claimer IS NOT t.agent THEN 'denied'
                                        WHEN w.status = 'claimed' AND w.expires_at >= t.now THEN 'renewed'
                                        ELSE 'granted' END AS outcome
                              FROM (SELECT NEW.task_id AS task_id,
                                           COALESCE(NEW.claimer, coord_agent()) AS agent,
                                           datetime('now') AS now,
                                           datetime('now', '+' || COALESCE(NEW.ttl_minutes, 60) || ' minutes') AS exp) AS t
                              LEFT JOIN main.work AS w ON w.task_id = t.task_id)) AS d
             LIMIT 1)
     LIMIT 1;

    -- an expiry SQLite could not compute, or an epoch past the last
    SELECT coord_fail(CASE WHEN expires_at IS NULL
                           THEN 'coord_claim: ttl_minutes gives no valid expiry time'
                           -- old epoch + 1 overflowed into a REAL
                           ELSE 'coord_claim: ' || task_id || ' is at the highest epoch '
                                || '(9223372036854775807): a new holder could not fence off the last one, '
                                || 'so it cannot be granted again' END)
      FROM coord_result
     WHERE expires_at IS NULL OR (outcome = 'granted' AND typeof(epoch) <> 'integer');

    -- coord:writes claim
    -- coord:check claim
    -- coord:event
END;

-- complete and abandon ------------------------------------------------------
DROP VIEW IF EXISTS temp.coord_complete;
CREATE TEMP VIEW coord_complete(task_id, claimer, epoch, result) AS
SELECT NULL, NULL, NULL, NULL WHERE 0;

DROP VIEW IF EXISTS temp.coord_abandon;
CREATE TEMP VIEW coord_abandon(task_id, claimer, epoch) AS
SELECT NULL, NULL, NULL WHERE 0;

CREATE TEMP TRIGGER coord_complete_do INSTEAD OF INSERT ON coord_complete
BEGIN
    DELETE FROM coord_result;
    SELECT coord_fail('coord_complete: task_id must be non-empty TEXT')
     WHERE typeof(NEW.task_id) IS NOT 'text' OR NEW.task_id = '';
    SELECT coord_fail('coord_complete: no claimer given and no agent set (coord_set_agent or $COORDINATION_AGENT)')
     WHERE COALESCE(NEW.claimer, coord_agent()) IS NULL;
    SELECT coord_fail('coord_complete: epoch must be an INTEGER or NULL')
     WHERE NEW.epoch IS NOT NULL AND typeof(NEW.epoch) IS NOT 'integer';
    -- the event records the result, and a BLOB has no canonical form
    SELECT coord_fail('coord_complete: result must not be a BLOB')
     WHERE typeof(NEW.result) = 'blob';
    INSERT INTO coord_result(op, task_id, agent, outcome, holder, epoch, expires_at, now, result)
    SELECT 'complete', t.task_id, t.agent,
           CASE WHEN w.task_id IS NULL THEN 'unknown_task'
                WHEN NEW.epoch IS NOT NULL AND NEW.epoch IS NOT w.epoch THEN 'lost_lease'
                WHEN w.status IS NOT 'claimed' THEN 'not_claimed'
                WHEN w.claimer IS NOT t.agent THEN 'not_holder'
                WHEN w.expires_at IS NULL OR w.expires_at < t.now THEN 'expired'
                ELSE 'completed' END,
           w.claimer, w.epoch, w.expires_at, t.now, NEW.result
      FROM (SELECT NEW.task_id AS task_id, COALESCE(NEW.claimer, coord_agent()) AS agent,
                   datetime('now') AS now) AS t
      LEFT JOIN main.work AS w ON w.task_id = t.task_id;
    -- coord:writes complete
    -- coord:check complete
    -- coord:event
    UPDATE coord_result SET detail = CASE outcome
        WHEN 'completed' THEN 'completed ' || task_id || ' at epoch ' || epoch
        WHEN 'unknown_task' THEN 'no task ' || task_id
        WHEN 'lost_lease' THEN 'lost lease: ' || task_id || ' is at epoch ' || epoch || ', held by ' || COALESCE(holder, 'nobody')
        WHEN 'not_claimed' THEN task_id || ' is not claimed'
        WHEN 'not_holder' THEN task_id || ' is held by ' || COALESCE(holder, 'nobody') || ', not ' || agent
        WHEN 'expired' THEN 'the claim on ' || task_id || ' expired at ' || COALESCE(expires_at, '?') || '; claim it again first'
        END;
END;

CREATE TEMP TRIGGER coord_abandon_do INSTEAD OF INSERT ON coord_abandon
BEGIN
    DELETE FROM coord_result;
    SELECT coord_fail('coord_abandon: task_id must be non-empty TEXT')
     WHERE typeof(NEW.task_id) IS NOT 'text' OR NEW.task_id = '';
    SELECT coord_fail('coord_abandon: no claimer given and no agent set (coord_set_agent or $COORDINATION_AGENT)')
     WHERE COALESCE(NEW.claimer, coord_agent()) IS NULL;
    SELECT coord_fail('coord_abandon: epoch must be an INTEGER or NULL')
     WHERE NEW.epoch IS NOT NULL AND typeof(NEW.epoch) IS NOT 'integer';
    INSERT INTO coord_result(op, task_id, agent, outcome, holder, epoch, expires_at, now)
    SELECT 'abandon', t.task_id, t.agent,
           CASE WHEN w.task_id IS NULL THEN 'unknown_task'
                WHEN NEW.epoch IS NOT NULL AND NEW.epoch IS NOT w.epoch THEN 'lost_lease'
                WHEN w.status IS NOT 'claimed' THEN 'not_claimed'
                WHEN w.claimer IS NOT t.agent THEN 'not_holder'
                ELSE 'abandoned' END,
           w.claimer, w.epoch, w.expires_at, t.now
      FROM (SELECT NEW.task_id AS task_id, COALESCE(NEW.claimer, coord_agent()) AS agent,
                   datetime('now') AS now) AS t
      LEFT JOIN main.work AS w ON w.task_id = t.task_id;
    -- coord:writes abandon
    -- coord:check abandon
    -- coord:event
    UPDATE coord_result SET detail = CASE outcome
        WHEN 'abandoned' THEN 'abandoned ' || task_id || ' at epoch ' || epoch
        WHEN 'unknown_task' THEN 'no task ' || task_id
        WHEN 'lost_lease' THEN 'lost lease: ' || task_id || ' is at epoch ' || epoch || ', held by ' || COALESCE(holder, 'nobody')
        WHEN 'not_claimed' THEN task_id || ' is not claimed'
        WHEN 'not_holder' THEN task_id || ' is held by ' || COALESCE(holder, 'nobody') || ', not ' || agent
        END;
END;

-- submit: a task that anyone may claim ------------------------------------
DROP VIEW IF EXISTS temp.coord_submit;
CREATE TEMP VIEW coord_submit(task_id, metadata) AS SELECT NULL, NULL WHERE 0;

CREATE TEMP TRIGGER coord_submit_do INSTEAD OF INSERT ON coord_submit
BEGIN
    DELETE FROM coord_result;
    SELECT coord_fail('coord_submit: task_id must be non-empty TEXT')
     WHERE typeof(NEW.task_id) IS NOT 'text' OR NEW.task_id = '';
    SELECT coord_fail('coord_submit: metadata must not be a BLOB')
     WHERE typeof(NEW.metadata) = 'blob';
    INSERT INTO coord_result(op, task_id, outcome, holder, epoch, now, detail, metadata)
    SELECT 'submit', NEW.task_id,
           CASE WHEN w.task_id IS NULL THEN 'submitted'
                WHEN w.status = 'abandoned' THEN 'resubmitted' ELSE 'exists' END,
           w.claimer, COALESCE(w.epoch, 0), datetime('now'),
           CASE WHEN w.task_id IS NULL THEN 'submitted ' || NEW.task_id
                WHEN w.status = 'abandoned' THEN NEW.task_id || ' was abandoned: available again'
                ELSE NEW.task_id || ' already exists (' || w.status || ')' END,
           NEW.metadata
      FROM (SELECT NULL) LEFT JOIN main.work AS w ON w.task_id = NEW.task_id;
    -- coord:writes submit
    -- coord:check submit
    -- coord:event
END;

-- send ------------------------------------------------------------------------
DROP VIEW IF EXISTS temp.coord_send;
CREATE TEMP VIEW coord_send(sender, recipient, channel, body) AS
SELECT NULL, NULL, NULL, NULL WHERE 0;

CREATE TEMP TRIGGER coord_send_do INSTEAD OF INSERT ON coord_send
BEGIN
    DELETE FROM coord_result;
    SELECT coord_fail('coord_send: no sender given and no agent set (coord_set_agent or $COORDINATION_AGENT)')
     WHERE COALESCE(NEW.sender, coord_agent()) IS NULL;
    SELECT coord_fail('coord_send: body must be TEXT')
     WHERE typeof(NEW.body) IS NOT 'text';
    SELECT coord_fail('coord_send: recipient must be TEXT or NULL (broadcast)')
     WHERE NEW.recipient IS NOT NULL AND typeof(NEW.recipient) IS NOT 'text';
    SELECT coord_fail('coord_send: channel must be TEXT or NULL (general)')
     WHERE NEW.channel IS NOT NULL AND typeof(NEW.channel) IS NOT 'text';
    INSERT INTO coord_result(op, agent, outcome, now, recipient, channel, body, mac)
    SELECT 'send', s, 'sent', datetime('now'), NEW.recipient, c, NEW.body,
           coord_signer_message(s, NEW.recipient, c, NEW.body)
      FROM (SELECT COALESCE(NEW.sender, coord_agent()) AS s, COALESCE(NEW.channel, 'general') AS c);
    -- coord:writes send
    -- coord:check send
    UPDATE coord_result
       SET (signed, message_id, detail) =
           (SELECT m.hmac IS NOT NULL, m.id,
                   -- the id is in message_id (a server gives its own), not in the text
                   'sent to ' || COALESCE(m.recipient, 'everyone') || ' on ' || m.channel
              FROM main.messages AS m WHERE m.id = last_insert_rowid());
    -- coord:event
END;
